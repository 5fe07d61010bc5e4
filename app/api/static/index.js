// The upload page: drag-and-drop / file picker, options, upload progress, a self-refreshing job list.
"use strict";

let chosen = null;

function choose(file) {
  chosen = file || null;
  document.getElementById("file-name").textContent = chosen ? `${chosen.name} (${(chosen.size / 1e6).toFixed(1)} MB)` : "";
  document.getElementById("submit").disabled = !chosen;
}

function setUpDrop() {
  const drop = document.getElementById("drop");
  const input = document.getElementById("file");
  drop.addEventListener("click", () => input.click());
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") input.click(); });
  input.addEventListener("change", () => choose(input.files[0]));
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => choose(e.dataTransfer.files[0]));
}

async function loadModels() {
  const select = document.getElementById("model");
  const body = await apiJson("/v1/models");
  const items = body.items.slice().sort((a, b) => (b.weights_present - a.weights_present) || a.name.localeCompare(b.name));
  for (const m of items) {
    const notes = [m.name === body.default_model ? "default" : "", m.weights_present ? "" : "weights missing"];
    const note = notes.filter(Boolean).join(", ");
    select.append(el("option", { value: m.name }, note ? `${m.name} (${note})` : m.name));
  }
  // What the server would pick for a job that names no model, not merely the first listed.
  if (items.some((m) => m.name === body.default_model)) select.value = body.default_model;
}

// XMLHttpRequest, because fetch() cannot report upload progress.
function upload(form) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/jobs");
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    const bar = document.getElementById("upload-progress");
    bar.hidden = false;
    bar.value = 0;
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = e.loaded / e.total; };
    xhr.onload = () => resolve(xhr);
    xhr.onerror = () => reject(new Error("network error during upload"));
    xhr.send(form);
  });
}

// "0:4, 10:12.5" -> "[[0,4],[10,12.5]]", the JSON list the server's `segments` field takes.
function rangesJson(text) {
  const pairs = text.split(",").map((part) => part.trim()).filter(Boolean).map((part) => {
    const bounds = part.split(":").map((x) => x.trim());
    const numbers = bounds.map(Number);
    if (bounds.length !== 2 || bounds.includes("") || numbers.some((x) => !Number.isFinite(x))) {
      throw new Error(`ranges: "${part}" is not START:END in seconds (e.g. 0:4, 10:12.5)`);
    }
    return numbers;
  });
  return JSON.stringify(pairs);
}

async function submit(event) {
  event.preventDefault();
  if (!chosen) return;
  const status = document.getElementById("upload-status");
  const form = new FormData();
  form.append("file", chosen, chosen.name);
  try {
    for (const field of document.querySelectorAll("#upload-form [name]")) {
      if (field.type === "checkbox") {  // sent only when ticked, as "on" (the server reads on/true/1)
        if (field.checked) form.append(field.name, "on");
        continue;
      }
      if (field.value.trim() === "") continue;
      form.append(field.name, field.name === "segments" ? rangesJson(field.value) : field.value);
    }
  } catch (error) {
    status.textContent = "";
    status.append(el("span", { class: "error" }, error.message));
    return;
  }
  document.getElementById("submit").disabled = true;
  status.textContent = "Uploading…";
  try {
    let xhr = await upload(form);
    if (xhr.status === 401 || xhr.status === 403) {
      await askForKey("This service needs an API key.");
      xhr = await upload(form);
    }
    const body = JSON.parse(xhr.responseText || "{}");
    if (xhr.status >= 400) throw new Error(body.detail || `HTTP ${xhr.status}`);
    status.textContent = "";
    status.append("Queued: ", el("a", { href: `/jobs/${body.id}` }, body.id));
    refreshJobs();
  } catch (error) {
    status.textContent = "";
    status.append(el("span", { class: "error" }, `Upload failed: ${error.message}`));
  } finally {
    document.getElementById("submit").disabled = !chosen;
  }
}

async function refreshJobs() {
  const tbody = document.getElementById("jobs");
  try {
    const body = await apiJson("/v1/jobs?limit=50");
    tbody.replaceChildren(...body.items.map((job) => {
      const progress = el("progress", { max: "1", value: String(job.progress) });
      return el("tr", { "data-job": job.id },
        el("td", {}, el("a", { href: `/jobs/${job.id}` }, job.video ? job.video.filename : job.id)),
        el("td", {}, el("span", { class: `status ${job.status}` }, job.status),
          job.error ? el("div", { class: "muted" }, job.error.code) : null),
        el("td", {}, progress, ` ${Math.round(100 * job.progress)}%`),
        el("td", {}, job.model),
        el("td", {}, duration(job.video && job.video.duration)),
        el("td", {}, new Date(job.created_at).toLocaleString()));
    }));
    document.getElementById("jobs-error").textContent = "";
  } catch (error) {
    document.getElementById("jobs-error").textContent = `Could not list jobs: ${error.message}`;
  }
}

setUpDrop();
document.getElementById("upload-form").addEventListener("submit", submit);
loadModels().catch((e) => { document.getElementById("upload-status").textContent = `Could not load models: ${e.message}`; });
refreshJobs();
setInterval(refreshJobs, 2000);
