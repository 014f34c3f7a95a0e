// esrgan web page: pick or drop an image, upscale it on the server, compare with bicubic, download.
// Plain browser APIs only (no libraries, no CDN), so the page works offline.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const el = {
    drop: $("drop"), file: $("file"), fileInfo: $("file-info"),
    model: $("model"), outscale: $("outscale"), format: $("format"),
    keyRow: $("key-row"), key: $("api-key"), go: $("go"),
    progress: $("progress"), bar: $("bar"), status: $("status"), error: $("error"),
    result: $("result"), zoom: $("zoom"), zoomLabel: $("zoom-label"), sizes: $("sizes"),
    download: $("download"), viewport: $("viewport"), stage: $("stage"),
    before: $("before"), after: $("after"), modelTag: $("model-tag"),
    split: $("split"), timing: $("timing"),
  };
  const KEY_STORAGE = "esrgan-api-key";
  const SCALES = [1, 1.5, 2, 3, 4, 6, 8];
  const state = { file: null, models: [], limits: null, ready: false, busy: false, urls: [] };

  // ------------------------------------------------------------------ helpers

  function headers() {
    const key = el.key.value.trim();
    return key ? { "X-API-Key": key } : {};
  }

  function randomId() {
    const bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function showError(message) {
    el.error.textContent = message;
    el.error.hidden = !message;
  }

  function setProgress(percent, text) {
    el.progress.hidden = false;
    el.bar.value = Math.max(0, Math.min(100, percent));
    el.status.textContent = text;
  }

  function refreshButton() {
    el.go.disabled = !(state.file && state.ready) || state.busy;
  }

  function formatBytes(n) {
    if (n >= 1048576) return `${(n / 1048576).toFixed(1)} MiB`;
    if (n >= 1024) return `${Math.round(n / 1024)} KiB`;
    return `${n} bytes`;
  }

  async function messageOf(status, blob, retryAfter) {
    let message = `the server answered ${status}`;
    try {
      const body = JSON.parse(await blob.text());
      if (body && body.message) message = body.message;
    } catch (_) {
      // not JSON: keep the status line
    }
    if (status === 503 && retryAfter) message += ` (try again in ${retryAfter} s)`;
    return message;
  }

  // ------------------------------------------------------------------ models

  async function loadModels() {
    state.ready = false;
    refreshButton();
    let res;
    try {
      res = await fetch("/v1/models", { headers: headers() });
    } catch (_) {
      showError("Cannot reach the server.");
      return;
    }
    if (res.status === 401) {
      el.keyRow.hidden = false;
      showError("This server needs an API key: enter it above.");
      return;
    }
    if (!res.ok) {
      showError(await messageOf(res.status, await res.blob()));
      return;
    }
    const body = await res.json();
    state.models = body.models.filter((m) => m.name !== "bicubic");
    state.limits = body.limits;
    el.model.replaceChildren(
      ...state.models.map((m) => {
        const option = new Option(`${m.name} (x${m.scale})`, m.name, m.default, m.default);
        option.title = m.description;
        return option;
      }),
    );
    fillScales();
    state.ready = true;
    showError("");
    refreshButton();
  }

  function fillScales() {
    const model = state.models.find((m) => m.name === el.model.value) || state.models[0];
    if (!model) return;
    const max = state.limits ? state.limits.max_outscale : 8;
    const scales = [...new Set([...SCALES, model.scale])].filter((s) => s <= max).sort((a, b) => a - b);
    el.outscale.replaceChildren(
      ...scales.map((s) => {
        const label = s === model.scale ? `×${s} (model)` : `×${s}`;
        return new Option(label, String(s), s === model.scale, s === model.scale);
      }),
    );
  }

  // ------------------------------------------------------------------ input

  function setFile(file) {
    if (!file) return;
    state.file = file;
    showError("");
    el.fileInfo.textContent = `${file.name} · ${formatBytes(file.size)}`;
    const url = URL.createObjectURL(file);
    const probe = new Image();
    probe.onload = () => {
      el.fileInfo.textContent = `${file.name} · ${probe.naturalWidth}×${probe.naturalHeight} · ${formatBytes(file.size)}`;
      URL.revokeObjectURL(url);
    };
    probe.onerror = () => URL.revokeObjectURL(url); // the server decides what it can read
    probe.src = url;
    if (state.limits && file.size > state.limits.max_upload_bytes) {
      showError(`This file is ${formatBytes(file.size)}; the server takes at most ${formatBytes(state.limits.max_upload_bytes)}.`);
    }
    refreshButton();
  }

  el.file.addEventListener("change", () => setFile(el.file.files[0]));
  for (const type of ["dragenter", "dragover"]) {
    el.drop.addEventListener(type, (event) => {
      event.preventDefault();
      el.drop.classList.add("over");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    el.drop.addEventListener(type, () => el.drop.classList.remove("over"));
  }
  el.drop.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files.length) setFile(event.dataTransfer.files[0]);
  });
  el.model.addEventListener("change", fillScales);
  el.key.value = sessionStorage.getItem(KEY_STORAGE) || "";
  el.key.addEventListener("change", () => {
    sessionStorage.setItem(KEY_STORAGE, el.key.value.trim());
    loadModels();
  });

  // ------------------------------------------------------------------ upscale

  // XMLHttpRequest rather than fetch: it reports upload progress.
  function send(fields, onUpload) {
    return new Promise((resolve, reject) => {
      const form = new FormData();
      form.append("file", state.file, state.file.name);
      for (const [name, value] of Object.entries(fields)) form.append(name, value);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/v1/upscale");
      xhr.responseType = "blob";
      for (const [name, value] of Object.entries(headers())) xhr.setRequestHeader(name, value);
      if (onUpload) {
        xhr.upload.onprogress = (e) => e.lengthComputable && onUpload(e.loaded / e.total);
        xhr.upload.onload = () => onUpload(1);
      }
      xhr.onload = () => resolve({ status: xhr.status, blob: xhr.response, header: (n) => xhr.getResponseHeader(n) });
      xhr.onerror = () => reject(new Error("the connection to the server failed"));
      xhr.send(form);
    });
  }

  function describeProgress(p) {
    switch (p.stage) {
      case "queued": return [22, "Waiting for a free worker"];
      case "decoding": return [25, "Decoding the image"];
      case "upscaling": {
        const total = Math.max(1, p.tiles_total);
        let fraction = p.tiles_done / total;
        // Between tiles (or with one tile), the server's estimate from its recent speed moves the bar.
        if (p.expected_s) fraction = Math.max(fraction, Math.min(0.97, p.stage_elapsed_s / p.expected_s));
        return [25 + 65 * fraction, `Upscaling: tile ${Math.min(p.tiles_done + 1, total)} of ${total}`];
      }
      case "encoding": return [92, "Encoding the result"];
      default: return [92, "Finishing"];
    }
  }

  async function run() {
    if (!state.file || state.busy) return;
    state.busy = true;
    refreshButton();
    showError("");
    const started = performance.now();
    const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;
    const id = randomId();
    const fields = { model: el.model.value, outscale: el.outscale.value, format: el.format.value };
    let uploaded = false;
    setProgress(0, "Uploading");
    const timer = setInterval(async () => {
      if (!uploaded) return;
      try {
        const res = await fetch(`/v1/progress/${id}`, { headers: headers() });
        if (!res.ok) return;
        const [percent, text] = describeProgress(await res.json());
        if (state.busy && el.bar.value < 95) setProgress(percent, `${text} · ${elapsed()}`);
      } catch (_) {
        // a missed poll only delays the next update
      }
    }, 300);
    try {
      const main = await send({ ...fields, request_id: id }, (fraction) => {
        uploaded = fraction >= 1;
        setProgress(20 * fraction, uploaded ? "Waiting for the server" : `Uploading ${Math.round(100 * fraction)}%`);
      });
      clearInterval(timer);
      if (main.status !== 200) {
        throw new Error(await messageOf(main.status, main.blob, main.header("Retry-After")));
      }
      setProgress(95, `Preparing the bicubic comparison · ${elapsed()}`);
      const base = await send({ model: "bicubic", outscale: fields.outscale, format: "png" });
      if (base.status !== 200) {
        throw new Error(`comparison: ${await messageOf(base.status, base.blob, base.header("Retry-After"))}`);
      }
      await showResult(main, base, fields);
      setProgress(100, `Done in ${elapsed()}`);
    } catch (err) {
      showError(`Upscaling failed: ${err.message}`);
      el.progress.hidden = true;
    } finally {
      clearInterval(timer);
      state.busy = false;
      refreshButton();
    }
  }

  el.go.addEventListener("click", run);

  // ------------------------------------------------------------------ result

  function filenameOf(disposition, fallback) {
    const match = /filename="([^"]+)"/.exec(disposition || "");
    return match ? match[1] : fallback;
  }

  function timingText(serverTiming) {
    return (serverTiming || "")
      .split(",")
      .map((part) => /^\s*([\w-]+);dur=([\d.]+)/.exec(part))
      .filter(Boolean)
      .map(([, name, ms]) => `${name} ${Math.round(Number(ms))} ms`)
      .join(" · ");
  }

  async function showResult(main, base, fields) {
    for (const url of state.urls) URL.revokeObjectURL(url);
    const afterUrl = URL.createObjectURL(main.blob);
    const beforeUrl = URL.createObjectURL(base.blob);
    state.urls = [afterUrl, beforeUrl];
    el.after.src = afterUrl;
    el.before.src = beforeUrl;
    await Promise.all([el.after.decode(), el.before.decode()]);
    const ext = fields.format === "jpg" ? "jpg" : fields.format;
    el.download.href = afterUrl;
    el.download.download = filenameOf(main.header("Content-Disposition"), `upscaled.${ext}`);
    el.modelTag.textContent = main.header("X-Model") || fields.model;
    el.sizes.textContent =
      `${main.header("X-Input-Size")} → ${main.header("X-Output-Size")} · ${formatBytes(main.blob.size)}`;
    el.timing.textContent = `Server time: ${timingText(main.header("Server-Timing"))}`;
    el.result.hidden = false;
    el.zoom.value = "1";
    setSplit(50);
    applyZoom();
    el.result.dataset.state = "ready";
    el.result.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  function setSplit(percent) {
    const value = Math.max(0, Math.min(100, percent));
    el.stage.style.setProperty("--split", `${value}%`);
    el.split.value = String(value);
  }

  function applyZoom(centre) {
    const natural = el.after.naturalWidth || 1;
    const vp = el.viewport;
    // "fit" shows the whole image: as wide as the view, or less for tall images.
    const maxHeight = parseFloat(getComputedStyle(vp).maxHeight) || Infinity;
    const aspect = natural / (el.after.naturalHeight || 1);
    const fit = Math.max(1, Math.min(vp.clientWidth, (maxHeight - 2) * aspect));
    const width = fit * Number(el.zoom.value);
    const fx = centre ? centre.x : (vp.scrollLeft + vp.clientWidth / 2) / Math.max(1, vp.scrollWidth);
    const fy = centre ? centre.y : (vp.scrollTop + vp.clientHeight / 2) / Math.max(1, vp.scrollHeight);
    el.stage.style.width = `${width}px`;
    el.stage.classList.toggle("pixelated", (width * devicePixelRatio) / natural >= 2);
    el.zoomLabel.textContent = Number(el.zoom.value) === 1 ? "fit" : `${Math.round((100 * width) / natural)}%`;
    vp.scrollLeft = fx * vp.scrollWidth - vp.clientWidth / 2;
    vp.scrollTop = fy * vp.scrollHeight - vp.clientHeight / 2;
  }

  el.zoom.addEventListener("input", () => applyZoom());
  el.split.addEventListener("input", () => setSplit(Number(el.split.value)));
  window.addEventListener("resize", () => el.result.hidden || applyZoom());

  el.viewport.addEventListener("wheel", (event) => {
    if (!event.ctrlKey) return; // plain wheel scrolls; ctrl+wheel (and pinch on touchpads) zooms
    event.preventDefault();
    const rect = el.stage.getBoundingClientRect();
    const centre = { x: (event.clientX - rect.left) / rect.width, y: (event.clientY - rect.top) / rect.height };
    const step = event.deltaY < 0 ? 0.5 : -0.5;
    el.zoom.value = String(Math.max(1, Math.min(8, Number(el.zoom.value) + step)));
    applyZoom(centre);
  }, { passive: false });

  // Drag the divider with a mouse; on touch screens the slider below moves it (a drag pans the zoom).
  let dragging = false;
  function splitAt(event) {
    const rect = el.stage.getBoundingClientRect();
    setSplit((100 * (event.clientX - rect.left)) / rect.width);
  }
  el.stage.addEventListener("pointerdown", (event) => {
    if (event.pointerType !== "mouse") return;
    dragging = true;
    el.stage.setPointerCapture(event.pointerId);
    splitAt(event);
  });
  el.stage.addEventListener("pointermove", (event) => dragging && splitAt(event));
  el.stage.addEventListener("pointerup", () => { dragging = false; });
  el.stage.addEventListener("pointercancel", () => { dragging = false; });

  loadModels();
})();
