// Shared by the pages: API calls that carry the API key (typed once, kept in sessionStorage).
"use strict";

const KEY_STORAGE = "vas.apiKey";

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

function authHeaders(extra) {
  const headers = Object.assign({}, extra || {});
  const key = apiKey();
  if (key) headers["Authorization"] = "Bearer " + key;
  return headers;
}

let pendingKey = null;

// The key prompt, built once on first need (both pages share it).
function keyDialog() {
  let dialog = document.getElementById("key-dialog");
  if (dialog) return dialog;
  dialog = document.createElement("div");
  dialog.id = "key-dialog";
  dialog.hidden = true;
  dialog.innerHTML =
    '<form id="key-form"><strong>API key</strong> <span id="key-message"></span> ' +
    '<input id="key-input" type="password" autocomplete="off" placeholder="vas_…"> ' +
    '<button type="submit">Use this key</button> ' +
    '<span class="muted">Kept in this tab\'s session storage only.</span></form>';
  document.body.appendChild(dialog);
  return dialog;
}

// Ask for the key (once per browser session); resolves when one is saved. Concurrent
// callers share one prompt.
function askForKey(message) {
  if (pendingKey) return pendingKey;
  const dialog = keyDialog();
  document.getElementById("key-message").textContent = message || "This service needs an API key.";
  dialog.hidden = false;
  const input = document.getElementById("key-input");
  input.focus();
  pendingKey = new Promise((resolve) => {
    document.getElementById("key-form").onsubmit = (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY_STORAGE, input.value.trim());
      dialog.hidden = true;
      pendingKey = null;
      resolve();
    };
  });
  return pendingKey;
}

// fetch() with the key; on 401/403 ask for a key and try again.
async function api(path, options) {
  for (let attempt = 0; ; attempt++) {
    const opts = Object.assign({}, options || {});
    opts.headers = authHeaders(opts.headers);
    const response = await fetch(path, opts);
    if ((response.status === 401 || response.status === 403) && attempt < 3) {
      await askForKey(attempt ? "That key was not accepted; try again." : "This service needs an API key.");
      continue;
    }
    return response;
  }
}

async function apiJson(path, options) {
  const response = await api(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.detail || response.statusText);
    error.status = response.status;
    error.body = body;
    throw error;
  }
  return body;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// h:mm:ss or m:ss, hours only when there are any.
function clock(totalSeconds, secondsText) {
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor((totalSeconds % 3600) / 60);
  return h ? `${h}:${String(m).padStart(2, "0")}:${secondsText}` : `${m}:${secondsText}`;
}

// A position in a video, to a tenth of a second: "4.5 s", "1:20.5", "1:02:03.0".
function seconds(value) {
  if (value === null || value === undefined) return "–";
  const tenths = Math.round(10 * Math.max(0, Number(value)));
  if (tenths < 600) return `${(tenths / 10).toFixed(1)} s`;
  const whole = Math.floor(tenths / 10);
  return clock(whole, `${String(whole % 60).padStart(2, "0")}.${tenths % 10}`);
}

// A video's length, as a person says it: "8.4 s", "42 s", "1:20", "1:02:03".
function duration(value) {
  if (value === null || value === undefined) return "–";
  const s = Math.max(0, Number(value));
  if (s < 9.95) return `${s.toFixed(1)} s`;
  const whole = Math.round(s);
  return whole < 60 ? `${whole} s` : clock(whole, String(whole % 60).padStart(2, "0"));
}

function percent(score) {
  return `${(100 * score).toFixed(1)}%`;
}

// A stable, well-spread colour per class id (golden-angle hues).
function labelColour(classId) {
  const hue = (classId * 137.508) % 360;
  return `hsl(${hue.toFixed(0)}, 65%, 55%)`;
}
