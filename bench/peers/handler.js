// The trivial Node.js handler of the warm benchmark (platform only).
exports.handler = async (event, context) => ({
    statusCode: 200, headers: { "Content-Type": "text/plain" }, body: "ok",
});
