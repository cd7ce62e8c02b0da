// The Kumo console's live parts. Every page works without this script;
// it only refreshes instance counts and follows a function's log.
"use strict";

// Instance counts: every cell with data-count="<key>" in a table marked
// data-live-instances is refreshed from that URL every few seconds.
function refreshInstanceCounts(table) {
  const url = table.dataset.liveInstances;
  const refresh = async () => {
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) return;
      const counts = await response.json();
      for (const cell of document.querySelectorAll("[data-count]")) {
        const value = counts[cell.dataset.count];
        if (value !== undefined && cell.textContent !== String(value)) {
          cell.textContent = String(value);
        }
      }
    } catch (_) {
      // The server is restarting or gone; the next tick tries again.
    }
  };
  setInterval(refresh, 3000);
}

// A followed log: the admin API's follow stream (newline-delimited JSON:
// the last lines, then new ones as they are written), read through the
// console's session.
function pad(number, width) {
  return String(number).padStart(width, "0");
}

function formatLine(line) {
  const time = new Date(line.time);
  const clock =
    pad(time.getUTCHours(), 2) + ":" + pad(time.getUTCMinutes(), 2) + ":" +
    pad(time.getUTCSeconds(), 2) + "." + pad(time.getUTCMilliseconds(), 3);
  return clock + " " + line.stream.padEnd(7, " ") + " " + line.text;
}

async function followLog(element) {
  const url = element.dataset.follow;
  let response;
  try {
    response = await fetch(url, { credentials: "same-origin" });
  } catch (_) {
    return;
  }
  if (!response.ok || !response.body) return;
  element.dataset.following = "true";
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let pending = "";
  let first = true;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += decoder.decode(value, { stream: true });
    let newline;
    let lines = [];
    while ((newline = pending.indexOf("\n")) >= 0) {
      const text = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (text.trim() === "") continue; // a heartbeat
      const parsed = JSON.parse(text);
      lines.push(parsed.missed !== undefined
        ? "… " + parsed.missed + " lines skipped (the reader fell behind)"
        : formatLine(parsed));
    }
    if (lines.length === 0) continue;
    if (first) {
      // The stream starts with the stored lines the page already shows.
      element.textContent = "";
      first = false;
    }
    const atBottom = element.scrollTop + element.clientHeight >= element.scrollHeight - 4;
    element.append(lines.join("\n") + "\n");
    if (atBottom) element.scrollTop = element.scrollHeight;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const table of document.querySelectorAll("[data-live-instances]")) {
    refreshInstanceCounts(table);
    break; // one poll refreshes every cell of the page
  }
  const log = document.querySelector("[data-follow]");
  if (log) {
    log.scrollTop = log.scrollHeight;
    followLog(log);
  }
});
