// One call: draws the recording's two channels (caller above, agent below) on the canvas from
// decodeAudioData, and seeks the player to a turn (or to a click on the waveform).
"use strict";
(function () {
  const audio = document.getElementById("recording");
  const canvas = document.getElementById("waveform");
  const note = document.getElementById("waveform-status");
  let buffer = null;

  document.querySelectorAll("button.seek").forEach((b) => {
    b.addEventListener("click", () => {
      if (!audio) return;
      audio.currentTime = Number(b.dataset.startMs) / 1000;
      document.querySelectorAll("button.seek.playing").forEach((x) => x.classList.remove("playing"));
      b.classList.add("playing");
      audio.play().catch(() => {});
    });
  });
  if (!audio || !canvas) return;

  function draw() {
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height;
    ctx.fillStyle = "#0d1117";
    ctx.fillRect(0, 0, w, h);
    if (buffer) {
      const colours = ["#3fb950", "#58a6ff"];
      const channels = Math.min(2, buffer.numberOfChannels);
      const lane = h / 2;
      for (let c = 0; c < channels; c++) {
        const data = buffer.getChannelData(c);
        const step = Math.max(1, Math.floor(data.length / w));
        const mid = lane * c + lane / 2;
        ctx.strokeStyle = colours[c];
        ctx.beginPath();
        for (let x = 0; x < w; x++) {
          let lo = 0, hi = 0;
          for (let i = x * step; i < Math.min(data.length, (x + 1) * step); i++) {
            const v = data[i];
            if (v < lo) lo = v;
            if (v > hi) hi = v;
          }
          ctx.moveTo(x + 0.5, mid + lo * (lane / 2 - 2));
          ctx.lineTo(x + 0.5, mid + hi * (lane / 2 - 2));
        }
        ctx.stroke();
      }
    }
    if (audio.duration > 0) {
      const x = (audio.currentTime / audio.duration) * w;
      ctx.fillStyle = "#f0883e";
      ctx.fillRect(x, 0, 2, h);
    }
  }
  canvas.addEventListener("click", (ev) => {
    if (!(audio.duration > 0)) return;
    const r = canvas.getBoundingClientRect();
    audio.currentTime = ((ev.clientX - r.left) / r.width) * audio.duration;
    draw();
  });
  audio.addEventListener("timeupdate", draw);
  audio.addEventListener("loadedmetadata", draw);

  fetch(audio.currentSrc || audio.src, { credentials: "same-origin" })
    .then((r) => { if (!r.ok) throw new Error("HTTP " + r.status); return r.arrayBuffer(); })
    .then((bytes) => new OfflineAudioContext(2, 1, 8000).decodeAudioData(bytes))
    .then((b) => {
      buffer = b;
      canvas.dataset.channels = String(b.numberOfChannels);
      canvas.dataset.seconds = b.duration.toFixed(2);
      note.textContent = b.numberOfChannels + " channels, " + b.duration.toFixed(1) + " s";
      draw();
    })
    .catch((e) => { note.textContent = "The waveform could not be drawn: " + e.message; });
  draw();
})();
