#!/usr/bin/python3 -IS
# fcgiwrap runs this per request (a fresh interpreter each time, the same
# -I -S flags as the platform's runtime): the same handler, as CGI.
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from handler import handler

length = int(os.environ.get("CONTENT_LENGTH") or 0)
body = sys.stdin.buffer.read(length) if length else b""
event = {"rawPath": os.environ.get("PATH_INFO", "/"),
         "body": body.decode("utf-8", "replace"),
         "requestContext": {"http": {"method": os.environ.get("REQUEST_METHOD")}}}
res = handler(event, None)
out = res["body"].encode()
head = "Status: %d OK\r\n" % res["statusCode"]
for k, v in res.get("headers", {}).items():
    head += "%s: %s\r\n" % (k, v)
head += "Content-Length: %d\r\n\r\n" % len(out)
sys.stdout.buffer.write(head.encode() + out)
