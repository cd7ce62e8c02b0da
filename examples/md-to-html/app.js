// md-to-html: a Markdown note uploaded to a bucket becomes an HTML page in
// another bucket, in JavaScript.
//
// On an object event (any format) for `<key>.md`, reads the note through
// the read-only mount of the notes bucket (INPUT_DIR, default /in) and
// writes `<key>.html` through the read-write mount of the site bucket
// (OUTPUT_DIR, default /out). A plain POST with a Markdown body answers the
// HTML itself. The converter knows headings, paragraphs, lists, code
// blocks, emphasis, inline code and links: enough for notes.

import { serve, event, files, env, log, HttpError } from "../../sdk/js/kumo.js";

function escapeHtml(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function inline(text) {
  return escapeHtml(text)
    .replace(/`([^`]+)`/g, "<code>$1</code>")
    .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
    .replace(/\*([^*]+)\*/g, "<em>$1</em>")
    .replace(/\[([^\]]+)\]\(([^)\s]+)\)/g, '<a href="$2">$1</a>');
}

function markdownToHtml(markdown) {
  const html = [];
  let paragraph = [];
  let list = null;
  let code = null;
  const flush = () => {
    if (paragraph.length) html.push(`<p>${inline(paragraph.join(" "))}</p>`);
    paragraph = [];
    if (list) html.push(`<ul>${list.map((item) => `<li>${inline(item)}</li>`).join("")}</ul>`);
    list = null;
  };
  for (const line of markdown.split(/\r?\n/)) {
    if (code !== null) {
      if (line.startsWith("```")) {
        html.push(`<pre><code>${escapeHtml(code.join("\n"))}</code></pre>`);
        code = null;
      } else {
        code.push(line);
      }
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    const item = /^[-*]\s+(.*)$/.exec(line);
    if (line.startsWith("```")) {
      flush();
      code = [];
    } else if (heading) {
      flush();
      html.push(`<h${heading[1].length}>${inline(heading[2])}</h${heading[1].length}>`);
    } else if (item) {
      if (paragraph.length) flush();
      (list ??= []).push(item[1]);
    } else if (line.trim() === "") {
      flush();
    } else {
      if (list) flush();
      paragraph.push(line.trim());
    }
  }
  if (code !== null) html.push(`<pre><code>${escapeHtml(code.join("\n"))}</code></pre>`);
  flush();
  return html.join("\n");
}

function page(title, body) {
  return `<!doctype html>\n<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>\n<body>\n${body}\n</body></html>\n`;
}

export const incomingHandler = serve(async (request) => {
  if (request.headers.get("ce-type") === null) {
    if (request.method !== "POST") throw new HttpError(405, "POST a Markdown document, or upload one to the bucket");
    const html = markdownToHtml(await request.text());
    return new Response(page("preview", html), { headers: { "content-type": "text/html; charset=utf-8" } });
  }
  const delivered = await event.fromRequest(request);
  const inputDir = env.get("INPUT_DIR", "/in");
  const outputDir = env.get("OUTPUT_DIR", "/out");
  const written = [];
  for (const change of delivered.body()) {
    if (!change.eventName.startsWith("ObjectCreated:") || !change.key.endsWith(".md")) {
      log.info(`skipping ${change.eventName} of ${change.key}`);
      continue;
    }
    if (change.key.split("/").some((part) => part === "" || part === "..")) {
      throw new HttpError(400, `refusing the key ${change.key}`);
    }
    const markdown = files.readText(`${inputDir}/${change.key}`);
    const title = (/^#\s+(.*)$/m.exec(markdown) ?? [null, change.key])[1];
    const targetKey = `${change.key.slice(0, -".md".length)}.html`;
    files.write(`${outputDir}/${targetKey}`, page(title, markdownToHtml(markdown)));
    log.info(`${change.key} -> ${targetKey}`);
    written.push(targetKey);
  }
  return { written };
});
