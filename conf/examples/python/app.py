import json
import os


def handler(event, context):
    """Greets whoever is named in ?name= or in a JSON body {"name": ...}."""
    name = (event.get("queryStringParameters") or {}).get("name")
    if not name and event.get("body"):
        try:
            name = json.loads(event["body"]).get("name")
        except (ValueError, AttributeError):
            pass
    print("hello-python called by", event["requestContext"]["http"]["sourceIp"])
    return {
        "greeting": "%s, %s!" % (os.environ.get("GREETING", "Hello"), name or "world"),
        "function": context.function_name,
        "version": context.function_version,
    }
