// One job: the video with a WebVTT label track, a timeline coloured by top-1 label,
// runs, the video-level summary and per-segment top-k scores.
"use strict";

const jobId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
const base = `/v1/jobs/${encodeURIComponent(jobId)}`;
const video = document.getElementById("video");
let cues = [];  // [{start, end, segment}] non-overlapping, in time order

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

function showJob(job) {
  document.getElementById("job-id").textContent = job.id;
  document.getElementById("title").textContent = job.video ? job.video.filename : "";
  const status = document.getElementById("status");
  status.textContent = job.status;
  status.className = `status ${job.status}`;
  document.getElementById("model").textContent = `model ${job.model}`;
  const bar = document.getElementById("progress");
  bar.value = job.progress;
  bar.hidden = job.status === "succeeded";
  document.getElementById("job-error").textContent = job.error ? `${job.error.code}: ${job.error.message}` : "";
}

// Without a key the browser streams the video itself (HTTP Range: seeking works); with
// one, <video> cannot send headers, so the file is fetched with the key into a blob URL.
async function loadVideo() {
  video.addEventListener("error", () => {
    document.getElementById("video-note").textContent =
      "This browser cannot play the stored video format; the labels below are still valid.";
  });
  if (!apiKey()) {
    const probe = await fetch(`${base}/video`, { method: "HEAD" });
    if (probe.ok) { video.src = `${base}/video`; return; }
  }
  const response = await api(`${base}/video`);
  if (!response.ok) {
    document.getElementById("video-note").textContent = `The video is not available (HTTP ${response.status}).`;
    return;
  }
  video.src = URL.createObjectURL(await response.blob());
}

async function loadResults() {
  let segments = [];
  let body = null;
  let cursor = null;
  do {
    const query = cursor ? `?limit=1000&cursor=${encodeURIComponent(cursor)}` : "?limit=1000";
    body = await apiJson(`${base}/results${query}`);
    segments = segments.concat(body.segments);
    cursor = body.next_cursor;
  } while (cursor);
  body.segments = segments;
  return body;
}

async function addTrack() {
  const response = await api(`${base}/results?format=vtt`);
  const url = URL.createObjectURL(new Blob([await response.text()], { type: "text/vtt" }));
  const track = el("track", { kind: "captions", label: "Labels", srclang: "en", src: url, default: "" });
  video.append(track);
  track.track.mode = "showing";
  track.addEventListener("cuechange", () => {
    const active = track.track.activeCues;
    document.getElementById("now").textContent = active && active.length ? active[0].text.split("\n")[0] : "";
  });
}

// The same trimming as the VTT track: with overlapping segments a cue ends where the next starts.
function toCues(segments) {
  const ordered = segments.slice().sort((a, b) => a.start - b.start || a.index - b.index);
  return ordered.map((seg, i) => {
    const next = ordered[i + 1];
    const end = next && next.start > seg.start && next.start < seg.end ? next.start : seg.end;
    return { start: seg.start, end, segment: seg };
  });
}

function seek(time) {
  video.currentTime = time;
  showTime(time);
}

function showTime(time) {
  const duration = Number(document.getElementById("timeline").dataset.duration || 0);
  if (duration > 0) document.getElementById("cursor").style.left = `${Math.min(100, (100 * time) / duration)}%`;
  const current = cues.find((c) => time >= c.start && time < c.end);
  for (const row of document.querySelectorAll("#segments tr.current")) row.classList.remove("current");
  if (current) {
    const row = document.querySelector(`#segments tr[data-index="${current.segment.index}"]`);
    if (row) row.classList.add("current");
  }
}

function renderTimeline(duration) {
  const strip = document.getElementById("timeline");
  strip.dataset.duration = String(duration);
  for (const old of strip.querySelectorAll(".seg")) old.remove();
  const legend = new Map();
  for (const cue of cues) {
    const top = cue.segment.labels[0];
    const colour = top ? labelColour(top.class_id) : "#c8ccd4";
    if (top) legend.set(top.label, colour);
    const title = `${seconds(cue.start)}–${seconds(cue.end)}: ` + (top ? `${top.label} ${percent(top.score)}` : "no label");
    strip.append(el("div", {
      class: "seg",
      title,
      "data-index": cue.segment.index,
      "data-label": top ? top.label : "",
      style: `left:${(100 * cue.start) / duration}%;width:${(100 * (cue.end - cue.start)) / duration}%;background:${colour}`,
      onclick: (event) => { event.stopPropagation(); seek(cue.start); },
    }));
  }
  document.getElementById("legend").replaceChildren(...[...legend].map(([label, colour]) =>
    el("span", {}, el("span", { class: "swatch", style: `background:${colour}` }), label)));
}

function renderTables(results) {
  document.getElementById("runs").replaceChildren(...results.runs.map((run) =>
    el("tr", {},
      el("td", {}, el("a", { href: "#", onclick: (e) => { e.preventDefault(); seek(run.start); } }, seconds(run.start))),
      el("td", {}, seconds(run.end)),
      el("td", {}, el("span", { class: "swatch", style: `background:${labelColour(run.class_id)}` }), run.label),
      el("td", {}, percent(run.score)))));
  document.getElementById("summary").replaceChildren(...results.summary.map((item) =>
    el("tr", {}, el("td", {}, item.label),
      el("td", {}, percent(item.score), el("span", { class: "bar", style: `width:${Math.round(80 * item.score)}px` }),
        // multi-label: score is the label's maximum, share its part of the video's time
        ...(item.share != null ? [el("span", { class: "muted" }, ` max; ${percent(item.share)} of the time`)] : [])))));
  document.getElementById("segments").replaceChildren(...results.segments.map((seg) =>
    el("tr", { "data-index": seg.index },
      el("td", {}, seg.index),
      el("td", {}, el("a", { href: "#", onclick: (e) => { e.preventDefault(); seek(seg.start); } },
        `${seconds(seg.start)}–${seconds(seg.end)}`)),
      el("td", {}, ...seg.labels.map((l) => el("div", {}, `${l.label} `,
        el("span", { class: "muted" }, percent(l.score)),
        el("span", { class: "bar", style: `width:${Math.round(80 * l.score)}px` })))))));
  const links = document.getElementById("downloads");
  links.replaceChildren("Download: ", ...["json", "csv", "vtt", "srt"].flatMap((fmt) =>
    [el("a", { href: "#", onclick: (e) => { e.preventDefault(); download(fmt); } }, fmt), " "]),
    "· ", el("a", { href: "#", id: "annotated", onclick: (e) => { e.preventDefault(); playAnnotated(); } },
      "annotated video"));
}

// The annotated MP4 is rendered by a worker on first request (202 until it is ready);
// once there it replaces the player's source (H.264, so it plays whatever the upload was).
async function playAnnotated() {
  const note = document.getElementById("video-note");
  for (;;) {
    const response = await api(`${base}/annotated.mp4`);
    if (response.status === 202) {
      note.textContent = "Rendering the annotated video…";
      await sleep(1000 * Number(response.headers.get("Retry-After") || 2));
      continue;
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      note.textContent = `Annotated video: ${body.detail || response.statusText}`;
      return;
    }
    const at = video.currentTime;
    video.src = URL.createObjectURL(await response.blob());
    video.currentTime = at;
    note.textContent = "Showing the annotated video.";
    document.body.dataset.annotated = "true";
    return;
  }
}

async function download(fmt) {
  const response = await api(`${base}/results?format=${fmt}`);
  const link = el("a", { href: URL.createObjectURL(await response.blob()), download: `${jobId}.${fmt}` });
  link.click();
}

// Server-Sent Events read with fetch(), so the API key travels in a header (EventSource
// cannot send one): progress, and each batch of finished segments as it lands.
async function followEvents(job) {
  const partial = new Map();
  const duration = (job.video && job.video.duration) || 0;
  const response = await api(`${base}/events`, { headers: { Accept: "text/event-stream" } });
  if (!response.ok || !response.body) throw new Error(`events: HTTP ${response.status}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const fields = {};
      for (const line of block.split("\n")) {
        const at = line.indexOf(":");
        if (at > 0) fields[line.slice(0, at)] = line.slice(at + 1).replace(/^ /, "");
      }
      if (!fields.event) continue;
      const data = JSON.parse(fields.data);
      if (fields.event === "status") { job = data; showJob(job); }
      else if (fields.event === "progress") document.getElementById("progress").value = data.progress;
      else if (fields.event === "reset") partial.clear();
      else if (fields.event === "segments") {
        for (const seg of data.segments) partial.set(seg.index, seg);
        document.body.dataset.partialBatches = String(Number(document.body.dataset.partialBatches || 0) + 1);
      }
      if ((fields.event === "segments" || fields.event === "reset") && duration > 0) {
        cues = toCues([...partial.values()]);
        renderTimeline(duration);
        document.getElementById("partial").textContent = `${partial.size} segments so far (partial results)`;
      }
    }
  }
  return job;
}

async function waitUntilFinished(job) {
  while (job.status === "queued" || job.status === "running") {
    await sleep(1000);
    job = await apiJson(base);
    showJob(job);
  }
  return job;
}

async function main() {
  let job = await apiJson(base);
  showJob(job);
  loadVideo().catch((e) => { document.getElementById("video-note").textContent = `Video: ${e.message}`; });
  const strip = document.getElementById("timeline");
  strip.addEventListener("click", (event) => {
    const box = strip.getBoundingClientRect();
    seek(((event.clientX - box.left) / box.width) * Number(strip.dataset.duration || 0));
  });
  if (job.status === "queued" || job.status === "running") {
    job = await followEvents(job).catch(() => job);
  }
  job = await waitUntilFinished(job);
  document.getElementById("partial").textContent = "";
  if (job.status !== "succeeded") return;
  const results = await loadResults();
  cues = toCues(results.segments);
  const ends = results.segments.map((s) => s.end);
  const duration = (job.video && job.video.duration) || results.video.duration || Math.max(1, ...ends);
  renderTimeline(duration);
  renderShots(document.getElementById("timeline"), results.shots, duration, seek);
  renderTables(results);
  setupWhy(results, duration);
  setupTracks(results, duration);
  await addTrack();
  video.addEventListener("timeupdate", () => showTime(video.currentTime));
  document.body.dataset.ready = "true";
}

main().catch((error) => {
  document.getElementById("job-error").textContent = `Could not load the job: ${error.message}`;
});
