/**
 * Calls Kosmos RPCs from Node through the generated client, for the Python tests
 * (tests/web/test_node_client.py): reads a JSON list of calls on stdin, makes each one and
 * prints one JSON answer per call: {"code": "ok" | Code name, "response": ..., "fields": [...]}.
 *
 *   node dist/test/call.mjs http://127.0.0.1:8080 [connect|grpc-web|binary] < calls.json
 *   [{"service": "recommendations", "method": "recommend", "key": "ksk....",
 *     "request": {"customer": "shops/demo/customers/c-00001", "pageSize": 5}, "timeoutMs": 1000}]
 */
import { fromJson, toJson, type DescMessage } from "@bufbuild/protobuf";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { Code, ConnectError } from "@connectrpc/connect";
import { createKosmos, fieldViolations, kosmosInterceptors, SERVICES } from "../src/index.js";

interface Call {
  service: keyof typeof SERVICES;
  method: string;
  key?: string;
  request: Record<string, unknown>;
  timeoutMs?: number;
}

async function main(): Promise<void> {
  const [baseUrl, protocol = "connect"] = process.argv.slice(2);
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const calls = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Call[];
  const answers: unknown[] = [];
  for (const call of calls) {
    const interceptors = kosmosInterceptors(call.key);
    const transport =
      protocol === "grpc-web"
        ? createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors })
        : createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: protocol === "binary", interceptors });
    const kosmos = createKosmos({ baseUrl, transport });
    const service = SERVICES[call.service];
    const method = service.method[call.method as keyof typeof service.method] as unknown as {
      input: DescMessage;
      output: DescMessage;
    };
    if (!method) throw new Error(`no method ${call.service}.${call.method}`);
    const client = kosmos[call.service] as unknown as Record<
      string,
      (request: unknown, options: { timeoutMs?: number }) => Promise<unknown>
    >;
    try {
      const response = await client[call.method](fromJson(method.input, call.request as never), {
        timeoutMs: call.timeoutMs,
      });
      answers.push({ code: "ok", response: toJson(method.output, response as never) });
    } catch (error) {
      const err = ConnectError.from(error);
      answers.push({ code: Code[err.code], message: err.rawMessage, fields: fieldViolations(err).map((f) => f.field) });
    }
  }
  process.stdout.write(JSON.stringify(answers) + "\n");
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
