# uWSGI entry point: the same handler, called without any isolation, with a
# minimal event built from the WSGI environ (no sandbox, no JSON framing).
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from handler import handler


def application(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    event = {"rawPath": environ.get("PATH_INFO", "/"),
             "body": body.decode("utf-8", "replace"),
             "requestContext": {"http": {"method": environ.get("REQUEST_METHOD")}}}
    res = handler(event, None)
    out = res["body"].encode()
    headers = list(res.get("headers", {}).items())
    headers.append(("Content-Length", str(len(out))))
    start_response("%d OK" % res["statusCode"], headers)
    return [out]
