// A detection job on the job page: the people's tracks with what each did when, and their boxes
// drawn on a canvas over the playing video, each track in its own colour (the annotated video's).
// Boxes are known at keyframes; between two keyframes of a track the box moves linearly from one
// to the other (box_overlay.py draws the annotated video by the same rule). Results' boxes are
// normalised in display orientation, so they scale straight onto the picture's rectangle.
"use strict";

const people = { tracks: new Map(), hold: 0.5, bridge: 2.5, size: [1, 1], frame: 0 };

function trackText(id, labels) {
  const actions = labels.slice(0, 2).map((l) => `${l.label} ${Math.round(100 * l.score)}%`).join(", ");
  return actions ? `#${id} ${actions}` : `#${id}`;
}

function boxesAt(t) {
  const out = [];
  for (const [id, keys] of people.tracks) {
    let i = 0;
    while (i < keys.length && keys[i].time <= t) i++;
    const before = keys[i - 1], after = keys[i];
    if (before && after && after.time - before.time <= people.bridge) {
      const a = (t - before.time) / Math.max(after.time - before.time, 1e-9);
      out.push({ id, box: before.box.map((v, k) => (1 - a) * v + a * after.box[k]), text: (a < 0.5 ? before : after).text });
      continue;
    }
    const near = [before, after].filter((k) => k && Math.abs(k.time - t) <= people.hold)
      .sort((p, q) => Math.abs(p.time - t) - Math.abs(q.time - t))[0];
    if (near) out.push({ id, box: near.box, text: near.text });
  }
  return out;
}

// The rectangle of the box canvas that the picture fills (the page's tests map boxes with it).
function peoplePictureBox(canvas) {
  return pictureBox(canvas, people.size);
}

function drawPeople() {
  const [canvas, ctx] = overlayCanvas("box-canvas");
  // The annotated video has the same boxes burned in: drawing them again would double them.
  const burnedIn = document.body.dataset.annotated === "true";
  const shown = canvas.width && !burnedIn ? boxesAt(video.currentTime) : [];
  canvas.dataset.boxes = String(shown.length);
  canvas.dataset.tracks = shown.map((s) => s.id).join(",");
  if (!shown.length) return;
  const [x0, y0, w, h] = peoplePictureBox(canvas);
  const size = Math.max(11, Math.round(h / 28));
  ctx.font = `${size}px sans-serif`;
  ctx.lineWidth = 2;
  for (const item of shown) {
    const colour = labelColour(item.id);
    const [x1, y1, x2, y2] = item.box;
    const left = x0 + x1 * w, top = y0 + y1 * h;
    ctx.strokeStyle = colour;
    ctx.strokeRect(left, top, (x2 - x1) * w, (y2 - y1) * h);
    const textTop = top >= size + 4 ? top - size - 4 : top + (y2 - y1) * h + 1;
    ctx.fillStyle = colour;
    ctx.fillRect(left, textTop, ctx.measureText(item.text).width + 6, size + 4);
    ctx.fillStyle = "#000";
    ctx.fillText(item.text, left + 3, textTop + size);
  }
}

function peopleLoop() {
  drawPeople();
  if (!video.paused && !video.ended) people.frame = requestAnimationFrame(peopleLoop);
}

function renderTracks(tracks) {
  document.getElementById("tracks").replaceChildren(...tracks.map((track) =>
    el("tr", { "data-track": track.id },
      el("td", {}, el("span", { class: "swatch", style: `background:${labelColour(track.id)}` }), `#${track.id}`),
      el("td", {}, el("a", { href: "#", onclick: (e) => { e.preventDefault(); seek(track.start); } }, seconds(track.start))),
      el("td", {}, seconds(track.end)),
      el("td", {}, ...track.runs.map((run) => el("div", {},
        el("a", { href: "#", onclick: (e) => { e.preventDefault(); seek(run.start); } }, run.label),
        el("span", { class: "muted" }, ` ${seconds(run.start)}–${seconds(run.end)} ${percent(run.score)}`)))))));
}

// Called by job.js once the results are in; nothing shows for a job without people.
function setupTracks(results, duration) {
  const detections = Array.isArray(results.detections) ? results.detections : [];
  const tracks = Array.isArray(results.tracks) ? results.tracks : [];
  if (!detections.length && !tracks.length) return;
  for (const d of detections.slice().sort((a, b) => a.time - b.time)) {
    if (!people.tracks.has(d.track_id)) people.tracks.set(d.track_id, []);
    people.tracks.get(d.track_id).push({ time: d.time, box: d.box, text: trackText(d.track_id, d.labels) });
  }
  const times = [...new Set(detections.map((d) => d.time))].sort((a, b) => a - b);
  const gaps = times.slice(1).map((t, i) => t - times[i]).sort((a, b) => a - b);
  const gap = gaps.length ? gaps[Math.floor(gaps.length / 2)] : 1;
  people.hold = gap / 2;
  people.bridge = 2.5 * gap;
  people.size = shownSize(results);
  renderTracks(tracks);
  document.getElementById("tracks-section").hidden = false;
  document.getElementById("box-canvas").hidden = false;
  video.addEventListener("play", () => { cancelAnimationFrame(people.frame); peopleLoop(); });
  for (const event of ["seeked", "timeupdate", "loadedmetadata"]) video.addEventListener(event, drawPeople);
  window.addEventListener("resize", drawPeople);
  drawPeople();
  document.body.dataset.tracks = String(tracks.length);
}
