// The "why" toggle on the job page (jobs run with explain=true): the current segment's heatmap
// on a canvas over the playing video, interpolated between the map's steps (heatmap.times) so
// it follows the action, and the explained clips' frame weights as a strip under the timeline.
// Maps are registered to the displayed frame: the canvas draws them over the part of the
// <video> box the picture fills (letterboxed, aspect kept), red to yellow as the PNGs are.
"use strict";

const why = { on: false, maps: new Map(), starts: [], spans: [], size: null, frame: 0 };

// The segment whose label is shown at t: the newest that has started, until it ends (the cues' rule).
function whySegmentAt(t) {
  let found = null;
  for (let i = 0; i < why.starts.length && why.starts[i] <= t; i++) found = i;
  return found === null || t >= why.spans[found].end ? null : why.spans[found].index;
}

function whyGridAt(t) {
  const segment = whySegmentAt(t);
  const item = segment === null ? null : why.maps.get(segment);
  if (!item) return null;
  const { times, data } = item.heatmap;
  let k = 0;
  while (k + 1 < times.length && times[k + 1] <= t) k++;
  if (t <= times[0] || k + 1 >= times.length) return data[t <= times[0] ? 0 : k];
  const a = (t - times[k]) / (times[k + 1] - times[k]);
  return data[k].map((row, i) => row.map((v, j) => (1 - a) * v + a * data[k + 1][i][j]));
}

function whyDraw() {
  const [canvas, ctx] = overlayCanvas("why-canvas");
  const grid = whyGridAt(video.currentTime);
  canvas.dataset.segment = String(whySegmentAt(video.currentTime) ?? "");
  if (!grid || !grid.length || !canvas.width) return;
  const h = grid.length, w = grid[0].length;
  const cells = new ImageData(w, h);
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      const v = Math.min(1, Math.max(0, grid[i][j])), at = 4 * (i * w + j);
      cells.data[at] = 255;
      cells.data[at + 1] = Math.round(255 * Math.min(1, Math.max(0, 2 * v - 1)));
      cells.data[at + 2] = 0;
      cells.data[at + 3] = Math.round(255 * 0.6 * v);
    }
  }
  const small = document.createElement("canvas");
  small.width = w;
  small.height = h;
  small.getContext("2d").putImageData(cells, 0, 0);
  ctx.imageSmoothingEnabled = true;  // bilinear, as the PNGs stretch the map
  ctx.drawImage(small, ...pictureBox(canvas, why.size));
}

function whyLoop() {
  if (!why.on) return;
  whyDraw();
  why.frame = requestAnimationFrame(whyLoop);
}

// One bar per explained frame: where the frame is in the video, as tall as its weight.
function whyStrip(explanations, duration) {
  const strip = document.getElementById("why-strip");
  strip.replaceChildren(...explanations.flatMap((item) => item.frames.map((f) => el("div", {
    class: "weight",
    title: `${seconds(f.time)}: weight ${f.weight.toFixed(2)} (segment ${item.segment}, ${item.label})`,
    style: `left:${Math.min(100, (100 * f.time) / duration)}%;height:${Math.round(100 * f.weight)}%`,
  }))));
}

function whyToggle(on) {
  why.on = on;
  document.getElementById("why-canvas").hidden = !on;
  document.getElementById("why-strip").hidden = !on;
  document.body.dataset.why = on ? "on" : "off";
  cancelAnimationFrame(why.frame);
  if (on) whyLoop();
}

// Called by job.js once the results are in; nothing shows for a job without explanations.
function setupWhy(results, duration) {
  const explanations = Array.isArray(results.explanations) ? results.explanations : [];
  if (!explanations.length || !(duration > 0)) return;
  for (const item of explanations) {
    if (!why.maps.has(item.segment) && item.heatmap.t > 0) why.maps.set(item.segment, item);
  }
  const ordered = results.segments.slice().sort((a, b) => a.start - b.start || a.index - b.index);
  why.starts = ordered.map((s) => s.start);
  why.spans = ordered.map((s) => ({ index: s.index, end: s.end }));
  why.size = shownSize(results);
  whyStrip(explanations, duration);
  const box = document.getElementById("why");
  box.addEventListener("change", () => whyToggle(box.checked));
  for (const event of ["seeked", "timeupdate"]) video.addEventListener(event, () => { if (why.on) whyDraw(); });
  document.getElementById("why-toggle").hidden = false;
}
