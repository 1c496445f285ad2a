// The official `openai` npm package against mockllm, served with the repository's example scenarios:
//
//   mockllm serve scenarios/            # or: docker run --rm -p 8000:8000 mockllm
//   cd examples/node && npm install && OPENAI_BASE_URL=http://127.0.0.1:8000/v1 node chat.mjs
//
// 1. streams the reply of the `greet` scenario chunk by chunk;
// 2. calls the `flaky` scenario, which answers 429 (with retry-after), then 503, then succeeds, and handles
//    the errors itself: wait as long as retry-after says on a 429, back off on a 5xx, give up after 5 tries.
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: process.env.OPENAI_BASE_URL ?? "http://127.0.0.1:8000/v1",
  apiKey: process.env.OPENAI_API_KEY ?? "sk-mockllm", // mockllm accepts any key
  maxRetries: 0, // handle retries below, to show what a 429 looks like; the SDK's own retries also honour it
});

async function streamGreeting() {
  const stream = await client.chat.completions.create({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: "Say hello" }],
    stream: true,
  });
  let text = "";
  let chunks = 0;
  for await (const chunk of stream) {
    const delta = chunk.choices[0]?.delta?.content;
    if (delta) {
      text += delta;
      chunks += 1;
    }
  }
  console.log(`streamed ${chunks} chunks: ${text}`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function askWithRetries(attempts = 5) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      const completion = await client.chat.completions.create({
        model: "flaky-model",
        messages: [{ role: "user", content: "Are you there?" }],
      });
      console.log(`attempt ${attempt}: ${completion.choices[0].message.content}`);
      return;
    } catch (err) {
      if (!(err instanceof OpenAI.APIError) || attempt >= attempts) throw err;
      if (err instanceof OpenAI.RateLimitError) {
        // retry-after is in seconds; mockllm also sends retry-after-ms, as OpenAI does.
        const waitMs = Number(err.headers?.get("retry-after-ms") ?? 1000 * Number(err.headers?.get("retry-after") ?? 1));
        console.log(`attempt ${attempt}: 429 rate limited (${err.code}); retrying after ${waitMs} ms`);
        await sleep(waitMs);
      } else if (err.status !== undefined && err.status >= 500) {
        console.log(`attempt ${attempt}: ${err.status} server error; retrying`);
        await sleep(100 * 2 ** attempt);
      } else {
        throw err;
      }
    }
  }
}

await streamGreeting();
await askWithRetries();
