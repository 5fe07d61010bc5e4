// Shared by explain.js and tracks.js: a canvas laid over the <video>, sized to its box, and the
// rectangle of that box the picture fills (letterboxed, aspect kept), in display orientation.
"use strict";

// The canvas `id` sized to the video's box and cleared, with its 2D context.
function overlayCanvas(id) {
  const canvas = document.getElementById(id);
  canvas.width = video.clientWidth;
  canvas.height = video.clientHeight;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  return [canvas, ctx];
}

// The rectangle of the canvas that the video's picture fills (object-fit: contain); `size`
// ([width, height] as shown) stands in until the video knows its own.
function pictureBox(canvas, size) {
  const [vw, vh] = video.videoWidth > 0 ? [video.videoWidth, video.videoHeight] : size;
  const scale = Math.min(canvas.width / vw, canvas.height / vh);
  const w = vw * scale, h = vh * scale;
  return [(canvas.width - w) / 2, (canvas.height - h) / 2, w, h];
}

// The picture's [width, height] as shown, from the results' video (a quarter turn swaps them).
function shownSize(results) {
  const shown = results.video || {};
  const quarter = Math.abs(shown.rotation || 0) % 180 === 90;
  return quarter ? [shown.height || 1, shown.width || 1] : [shown.width || 1, shown.height || 1];
}
