// A loopback proxy for the conformance suite, whose server scenarios connect without a token: it adds
// `Authorization: Bearer <token>` and forwards everything else (Host and Origin included, so the
// server's DNS-rebinding checks still see what the suite sent), streaming responses through.
import http from "node:http";

const [listenPort, target, token] = process.argv.slice(2);
const upstream = new URL(target);

http
  .createServer((req, res) => {
    const headers = { ...req.headers, authorization: `Bearer ${token}` };
    const forward = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
      (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on("error", (e) => {
      res.writeHead(502, { "content-type": "text/plain" });
      res.end(`proxy: ${e.message}`);
    });
    req.pipe(forward);
  })
  .listen(Number(listenPort), "127.0.0.1");
