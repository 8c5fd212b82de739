// A public Node.js function: echoes the method, path and body it was given.
exports.handler = async (event, context) => {
  console.log(`hello-node ${event.requestContext.http.method} ${event.rawPath}`);
  return {
    statusCode: 200,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      message: 'Hello from Node.js ' + process.version,
      method: event.requestContext.http.method,
      path: event.rawPath,
      body: event.body || null,
      requestId: context.awsRequestId,
    }),
  };
};
