// Code for exactly one request: curl, the Python SDK (limner.client), fal-client and openai.
const origin = () => location.origin;

// A JSON value as a Python literal (True/False/None; strings through JSON, which Python reads).
export function py(value, indent = 0) {
  const pad = " ".repeat(indent + 4), end = " ".repeat(indent);
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "string" || typeof value === "number") return JSON.stringify(value);
  if (Array.isArray(value)) return value.length ? `[${value.map((v) => py(v, indent)).join(", ")}]` : "[]";
  const items = Object.entries(value);
  if (!items.length) return "{}";
  return `{\n${items.map(([k, v]) => `${pad}${JSON.stringify(k)}: ${py(v, indent + 4)},`).join("\n")}\n${end}}`;
}

const shellQuote = (text) => `'${text.replace(/'/g, `'"'"'`)}'`;

export function snippets(modelId, task, input, { keyed = false } = {}) {
  const auth = keyed ? ` \\\n  -H "Authorization: Key $LIMNER_API_KEY"` : "";
  const key = keyed ? `os.environ["LIMNER_API_KEY"]` : "None";
  const out = {
    curl: `curl -s -X POST ${origin()}/v1/queue/${modelId}${auth} \\\n  -H "Content-Type: application/json" \\\n  -d ${shellQuote(JSON.stringify(input))}`,
    python: `${keyed ? "import os\n" : ""}from limner.client import Client\n\nwith Client(${JSON.stringify(origin())}, api_key=${key}) as client:\n    result = client.subscribe(${JSON.stringify(modelId)}, ${py(input, 4)})\n    print(result.raw)`,
    "fal-client": `# fal-client wants https: serve TLS (see the README), then\n# export FAL_QUEUE_RUN_HOST=${location.host}/v1/queue FAL_RUN_HOST=${location.host}/v1/run FAL_KEY=${keyed ? "$LIMNER_API_KEY" : "any"}\nimport fal_client\n\nresult = fal_client.subscribe(${JSON.stringify(modelId)}, arguments=${py(input)}, with_logs=True)\nprint(result)`,
  };
  const openai = openaiSnippet(modelId, task, input, keyed);
  if (openai) out.openai = openai;
  return out;
}

function openaiSnippet(modelId, task, input, keyed) {
  const head = `from openai import OpenAI\n\nclient = OpenAI(base_url=${JSON.stringify(origin() + "/v1")}, api_key=${keyed ? `os.environ["LIMNER_API_KEY"]` : `"unused"`})\n`;
  const imports = keyed ? "import os\n" : "";
  if (task === "text-to-image") {
    const { prompt, num_outputs, width, height, ...rest } = input;
    const args = [`model=${JSON.stringify(modelId)}`, `prompt=${py(prompt)}`];
    if (num_outputs !== undefined) args.push(`n=${num_outputs}`);
    if (width !== undefined && height !== undefined) args.push(`size="${width}x${height}"`);
    if (Object.keys(rest).length) args.push(`extra_body=${py(rest, 4)}`);
    return `${imports}${head}image = client.images.generate(\n    ${args.join(",\n    ")},\n)\nprint(image.data[0].url)`;
  }
  if (task === "text-to-speech") {
    const { text, ...rest } = input;
    const extra = Object.keys(rest).length ? `,\n    extra_body=${py(rest, 4)}` : "";
    return `${imports}${head}speech = client.audio.speech.create(\n    model=${JSON.stringify(modelId)}, voice="alloy", input=${py(text)}, response_format="wav"${extra},\n)\nspeech.write_to_file("speech.wav")`;
  }
  return null; // the OpenAI-compatible routes cover images and speech only
}
