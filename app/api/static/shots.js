// Shot boundaries on the job page's timeline (jobs run with detect_shots): a thin line where
// each shot after the first begins after a hard cut, a wider hatched band where it begins in
// a gradual transition (dissolve, fade: the results give the shot's start, the transition's
// middle, not the transition's span). Clicking a marker seeks to the shot.
"use strict";

function renderShots(strip, shots, duration, onSeek) {
  for (const old of strip.querySelectorAll(".shot")) old.remove();
  for (const old of document.querySelectorAll("#legend .shot-key")) old.remove();
  if (!Array.isArray(shots) || !(duration > 0)) return;
  strip.dataset.shots = String(shots.length);
  const legend = document.getElementById("legend");
  if (legend && shots.length > 1) {
    legend.append(el("span", { class: "shot-key" }, el("span", { class: "swatch cut" }), "cut"),
      el("span", { class: "shot-key" }, el("span", { class: "swatch gradual" }), "gradual transition"));
  }
  for (const shot of shots) {
    if (shot.index === 0 || shot.start <= 0) continue;  // the first shot starts the video: no boundary
    const kind = shot.transition === "gradual" ? "gradual" : "cut";
    const how = kind === "gradual" ? "gradual transition" : "cut";
    strip.append(el("div", {
      class: `shot ${kind}`,
      title: `Shot ${shot.index + 1} from ${seconds(shot.start)} (${how})`,
      "data-index": shot.index,
      "data-start": shot.start,
      style: `left:${Math.min(100, (100 * shot.start) / duration)}%`,
      onclick: (event) => { event.stopPropagation(); onSeek(shot.start); },
    }));
  }
}
