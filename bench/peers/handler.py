# The trivial Python handler every warm benchmark runs: through the platform
# (a function), through uWSGI (wsgi_app.py) and as a CGI script (cgi_app.py).
def handler(event, context):
    return {"statusCode": 200, "headers": {"Content-Type": "text/plain"}, "body": "ok"}
