// A graphql-ws client with retries on (5 attempts, every close retried if the library would)
// subscribing with a bad token: prints how many connections it opened and how it ended.
// Usage: node --experimental-websocket graphql-ws-retry.mjs <ws URL> <token>
import { createClient } from "graphql-ws";

const [url, token] = process.argv.slice(2);
let connecting = 0;
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { authorization: `Bearer ${token}` },
  retryAttempts: 5,
  shouldRetry: () => true,
  retryWait: async () => {},
  on: { connecting: () => { connecting += 1; } },
});
const ended = await new Promise((resolve) => {
  client.subscribe(
    { query: "subscription { deviceEvents(deviceId: \"a1\") { missed } }" },
    {
      next: () => {},
      error: (error) => resolve({ code: error.code ?? null, reason: error.reason ?? String(error) }),
      complete: () => resolve({ complete: true }),
    },
  );
});
await client.dispose();
console.log(JSON.stringify({ connecting, ...ended }));
