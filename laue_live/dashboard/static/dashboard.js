/* laue-live dashboard: the page's logic. Plain JavaScript on plotly.js (served by the dashboard itself).
 *
 * Data: GET /api/runs (run picker), GET /api/run/UID (a run's map), GET /api/run/UID/frame/N (spots),
 * GET /api/run/UID/frame/N/image (the frame at display resolution), and the /ws websocket, which sends
 * what changed at a fixed cadence: {type: "runs" | "frames" | "grains" | "latest" | "health"}. An indexed
 * run adds the maps of its grains: orientation (inverse-pole-figure colours, with each material's colour
 * key), misorientation, strain components, matched fraction... (run.grains, "grains" updates).
 */
"use strict";

const $ = (id) => document.getElementById(id);
const PLOT_CONFIG = { displaylogo: false, responsive: true, scrollZoom: false };
const EMPTY_LAYOUT = { margin: { t: 8, l: 8, r: 8, b: 8 }, xaxis: { visible: false }, yaxis: { visible: false } };
const CATEGORIES = [
  // name, marker; a spot falls in the first category that takes it
  { name: "edge", test: (s) => s.edge, marker: { symbol: "square-open", color: "#e08a00", size: 11, line: { width: 1.6 } } },
  { name: "masked", test: (s) => s.masked, marker: { symbol: "square-x-open", color: "#5a5a5a", size: 11, line: { width: 1.6 } } },
  { name: "saturated", test: (s) => s.saturated, marker: { symbol: "diamond-open", color: "#b000b5", size: 12, line: { width: 1.6 } } },
  { name: "good", test: (s) => s.good, marker: { symbol: "circle-open", color: "#00a651", size: 12, line: { width: 1.8 } } },
  { name: "bad", test: () => true, marker: { symbol: "x-thin-open", color: "#e0261b", size: 9, line: { width: 1.8 } } },
];

const state = {
  run: null,          // the run shown: /api/run payload, merged with live frames
  index: new Map(),   // frame -> position in run.frames
  grainIndex: new Map(),  // frame -> position in run.grains.frames (indexed runs)
  follow: true,
  liveCurrent: null,
  valueName: "n_good",
  frame: null,        // frame shown in the frame panel
  picture: null,
  spots: null,
  sort: { column: "spot", dir: 1 },
  latest: null,
  latestShown: null,
  latestTimer: null,
  latestFetched: 0,
  latestInterval: 2000,
  mapPending: false,
  zoomTimer: null,
  loading: null,
};

// ---------------------------------------------------------------------------------------------- utils
async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  let data;
  try { data = await response.json(); } catch (e) { data = { error: response.statusText }; }
  if (response.status === 401) { window.location.assign("/login"); }
  if (!response.ok) { throw new Error(data.error || response.statusText); }
  return data;
}

function showMessage(text) {
  const el = $("message");
  el.textContent = text || "";
  el.hidden = !text;
}

function fmt(v, digits) {
  if (v === null || v === undefined || Number.isNaN(v)) { return "–"; }
  if (typeof v === "boolean") { return v ? "yes" : "no"; }
  if (typeof v !== "number") { return String(v); }
  if (Number.isInteger(v)) { return String(v); }
  return v.toFixed(digits === undefined ? 3 : digits);
}

function runLabel(r) {
  const when = r.time ? (typeof r.time === "number" ? new Date(r.time * 1000).toISOString().slice(0, 16).replace("T", " ")
    : String(r.time).replace("T", " ").slice(0, 16)) : "";
  const parts = [`scan ${r.scan_id ?? r.raw_scan_id ?? "?"}`];
  if (r.sample) { parts.push(r.sample); }
  if (when) { parts.push(when); }
  parts.push(r.uid.slice(0, 8));
  const ended = r.ended ?? (r.exit_status !== null && r.exit_status !== undefined);
  if (r.live) { parts.push(ended ? "live, ended" : "LIVE"); }
  return parts.join(" · ");
}

// ------------------------------------------------------------------------------------------ run picker
async function findRuns(event) {
  if (event) { event.preventDefault(); }
  const params = new URLSearchParams();
  for (const [id, key] of [["q-scan", "scan_id"], ["q-sample", "sample"], ["q-since", "since"], ["q-until", "until"]]) {
    const v = $(id).value.trim();
    if (v) { params.set(key, v); }
  }
  try {
    const data = await getJSON(`/api/runs?${params}`);
    fillPicker(data.runs, data.current);
    showMessage(data.error ? `Tiled: ${data.error}` : (data.runs.length ? "" : "no run matches"));
    if (event && data.runs.length) {  // a search: show the newest run it found
      $("run-select").value = data.runs[0].uid;
      pickRun();
    }
  } catch (e) {
    showMessage(e.message);
  }
}

function fillPicker(runs, current) {
  const select = $("run-select");
  const shown = state.run ? state.run.uid : null;
  select.replaceChildren();
  const uids = new Set();
  for (const r of runs) {
    if (uids.has(r.uid)) { continue; }
    uids.add(r.uid);
    const option = document.createElement("option");
    option.value = r.uid;
    option.textContent = runLabel(r);
    select.appendChild(option);
  }
  if (shown && !uids.has(shown) && state.run) {
    const option = document.createElement("option");
    option.value = shown;
    option.textContent = runLabel({ ...state.run.start, uid: shown, live: state.run.live, ended: state.run.ended });
    select.prepend(option);
  }
  if (shown) { select.value = shown; } else if (current) { select.value = current; }
}

function pickRun() {
  const uid = $("run-select").value;
  if (!uid) { return; }
  state.follow = uid === state.liveCurrent && $("follow").checked;
  if (uid !== state.liveCurrent) { $("follow").checked = false; }
  loadRun(uid);
}

// ---------------------------------------------------------------------------------------------- runs
async function loadRun(uid) {
  state.loading = uid;
  try {
    const run = await getJSON(`/api/run/${encodeURIComponent(uid)}`);
    if (state.loading !== uid) { return; }
    state.run = run;
    state.index = new Map(run.frames.map((f, i) => [f, i]));
    state.grainIndex = new Map(run.grains ? run.grains.frames.map((f, i) => [f, i]) : []);
    state.frame = null;
    fillValuePicker(run.value_defs);
    const s = run.start;
    $("run-title").textContent = `scan ${s.raw_scan_id ?? s.scan_id ?? "?"}${s.sample ? " · " + s.sample : ""} · `
      + `${uid.slice(0, 8)} · ${s.method || ""}${run.live && !run.ended ? " · live" : ""}`;
    drawMap();
    clearFrame();
    const select = $("run-select");
    if (![...select.options].some((o) => o.value === uid)) { fillPicker([], null); }
    select.value = uid;
    showMessage("");
  } catch (e) {
    showMessage(`run ${uid.slice(0, 8)}: ${e.message}`);
  } finally {
    if (state.loading === uid) { state.loading = null; }
  }
}

function fillValuePicker(defs) {
  const select = $("map-value");
  const names = defs.map((d) => d.name).join(",");
  if (select.dataset.names === names) { return; }
  select.dataset.names = names;
  select.replaceChildren();
  for (const d of defs) {
    const option = document.createElement("option");
    option.value = d.name;
    option.textContent = d.label;
    select.appendChild(option);
  }
  select.value = defs.some((d) => d.name === state.valueName) ? state.valueName : defs[0].name;
  state.valueName = select.value;
}

// Put a message's frames into a run's (or its grains') arrays; returns the position of each frame.
function mergeRows(target, index, message) {
  return message.frames.map((frame, k) => {
    let i = index.get(frame);
    if (i === undefined) {
      i = target.frames.length;
      target.frames.push(frame);
      index.set(frame, i);
    }
    for (const name of Object.keys(target.values)) {
      target.values[name][i] = message.values[name] ? message.values[name][k] : null;
    }
    return i;
  });
}

function mergeGrains(message) {
  const run = state.run;
  if (!run || message.uid !== run.uid || !run.grains) { return false; }
  const g = run.grains;
  mergeRows(g, state.grainIndex, message).forEach((i, k) => { g.rgb[i] = message.rgb[k]; });
  g.materials = message.materials;
  Object.assign(run.ipf_keys, message.ipf_keys || {});
  return true;
}

function mergeFrames(message) {
  const run = state.run;
  if (!run || message.uid !== run.uid) { return false; }
  mergeRows(run, state.index, message);
  Object.assign(run.errors, message.errors || {});
  if (!run.geometry.known) {  // unknown raster: one row that grows
    const n = Math.max(...run.frames) + 1;
    run.geometry.shape = [1, n];
    run.geometry.x = Array.from({ length: n }, (_, i) => i);
  }
  return true;
}

// ----------------------------------------------------------------------------------------------- map
function cellOf(frame, geometry) {
  const cols = geometry.shape[1];
  const row = Math.floor(frame / cols);
  let col = frame % cols;
  if (geometry.snake && row % 2 === 1) { col = cols - 1 - col; }
  return [row, col];
}

function frameOf(row, col, geometry) {
  const cols = geometry.shape[1];
  const c = geometry.snake && row % 2 === 1 ? cols - 1 - col : col;
  return row * cols + c;
}

function scheduleMap() {
  if (state.mapPending) { return; }
  state.mapPending = true;
  window.requestAnimationFrame(() => { state.mapPending = false; drawMap(); });
}

function drawMap() {
  const run = state.run;
  if (!run) { return; }
  const g = run.geometry;
  const [rows, cols] = g.shape;
  const def = run.value_defs.find((d) => d.name === state.valueName) || run.value_defs[0];
  const source = def.grain ? run.grains : run;  // grain values: the frames indexed so far
  const z = Array.from({ length: rows }, () => new Array(cols).fill(null));
  const frameGrid = Array.from({ length: rows }, () => new Array(cols).fill(null));
  const failedX = [], failedY = [], failedFrames = [];
  const orientation = def.name === "orientation";
  const rgba = orientation ? Array.from({ length: rows }, () => new Array(cols).fill([0, 0, 0, 0])) : null;
  let limit = 0;
  source.frames.forEach((frame, i) => {
    const [r, c] = cellOf(frame, g);
    if (r >= rows || c >= cols) { return; }
    frameGrid[r][c] = frame;
    if (orientation) {  // no grain: black
      const rgb = source.rgb[i];
      rgba[r][c] = rgb ? [255 * rgb[0], 255 * rgb[1], 255 * rgb[2], 1] : [0, 0, 0, 1];
      return;
    }
    z[r][c] = source.values[def.name][i];
    if (z[r][c] !== null) { limit = Math.max(limit, Math.abs(z[r][c])); }
    if (!def.grain && run.values.failed[i] === 1 && def.name !== "failed") {
      failedX.push(g.x[c]); failedY.push(g.y[r]); failedFrames.push(frame);
    }
  });
  const done = source.frames.length;
  const unit = g.unit === "point" ? "" : ` ${g.unit}`;
  const where = `x %{x:.4~g}${unit}, y %{y:.4~g}${unit}<br>frame %{customdata}`;
  const heatmap = {
    type: "heatmap", x: g.x, y: g.y, z, customdata: frameGrid, colorscale: "Viridis", hoverongaps: false,
    colorbar: { title: { text: def.title, side: "right" }, thickness: 14 },
    hovertemplate: `${where}<br>${def.label}: %{z:.4~g} ${def.unit}<extra></extra>`,
  };
  if (def.diverging) {  // a strain component: a diverging scale centred on zero
    Object.assign(heatmap, { colorscale: "RdBu", reversescale: true, zmin: -(limit || 1), zmax: limit || 1 });
  }
  const layers = [heatmap];
  if (orientation) {
    // the colours are an image; a transparent heatmap above it keeps the hover and the click on a cell
    const step = (a) => (a.length > 1 ? a[1] - a[0] : 1);
    layers[0] = { type: "image", colormodel: "rgba", z: rgba, x0: g.x[0], dx: step(g.x), y0: g.y[0], dy: step(g.y),
      hoverinfo: "skip", name: "orientation" };
    layers.push({ type: "heatmap", x: g.x, y: g.y, z: frameGrid.map((row) => row.map((f) => (f === null ? null : 0))),
      customdata: frameGrid, opacity: 0, showscale: false, hoverongaps: false,
      hovertemplate: `${where}<extra></extra>` });
  }
  const traces = [...layers, {
    type: "scatter", mode: "markers", x: failedX, y: failedY, customdata: failedFrames, name: "failed frame",
    marker: { symbol: "x-thin-open", size: 12, color: "#c62828", line: { width: 2 } },
    hovertemplate: "frame %{customdata} failed<extra></extra>", showlegend: failedX.length > 0,
  }];
  if (state.frame !== null && state.index.has(state.frame)) {
    const [r, c] = cellOf(state.frame, g);
    traces.push({ type: "scatter", mode: "markers", x: [g.x[c]], y: [g.y[r]], name: `frame ${state.frame}`,
      marker: { symbol: "square-open", size: 16, color: "#ff2d95", line: { width: 2.5 } }, hoverinfo: "skip",
      showlegend: false });
  }
  const total = rows * cols;
  const layout = {
    margin: { l: 70, r: orientation ? 170 : 10, t: 34, b: 50 }, uirevision: run.uid,
    title: { text: `${def.label}: ${done}${g.known ? " / " + total : ""} frames${def.grain ? " indexed" : ""}`,
      font: { size: 13 } },
    xaxis: { title: { text: g.x_label }, constrain: "domain" },
    yaxis: { title: { text: g.y_label }, autorange: "reversed" },
    legend: { orientation: "h", y: -0.16 },
  };
  if (g.known && g.unit !== "point" && rows > 1 && cols > 1) {
    layout.yaxis.scaleanchor = "x";
    layout.yaxis.scaleratio = 1;
  }
  if (orientation) {
    layout.plot_bgcolor = "#d1d1d1";  // frames not (yet) indexed
    addKeys(layout, run.ipf_keys || {});
  }
  Plotly.react("map", traces, layout, PLOT_CONFIG);
}

// The colour key of each material on an orientation map, right of the map: its sector, corners labelled.
function addKeys(layout, keys) {
  layout.images = [];
  layout.annotations = [{ xref: "paper", yref: "paper", x: 1.02, y: -0.02, xanchor: "left", yanchor: "top",
    text: "black: no grain<br>grey: not indexed", showarrow: false, font: { size: 10 }, align: "left" }];
  Object.values(keys).forEach((key, n) => {
    const x0 = 1.03, w = 0.3, h = 0.36, top = 0.92 - n * (h + 0.14);
    layout.images.push({ source: key.src, xref: "paper", yref: "paper", x: x0, y: top, sizex: w, sizey: h,
      xanchor: "left", yanchor: "top", sizing: "stretch", layer: "above" });
    layout.annotations.push({ xref: "paper", yref: "paper", x: x0, y: top + 0.02, xanchor: "left", yanchor: "bottom",
      text: `${key.material}: IPF-z`, showarrow: false, font: { size: 11 }, name: "ipf-key" });
    for (const [fx, fy, label] of key.corners) {
      layout.annotations.push({ xref: "paper", yref: "paper", x: x0 + fx * w, y: top - (1 - fy) * h,
        text: label, showarrow: false, font: { size: 10 }, name: "ipf-corner",
        xanchor: fx > 0.5 ? "left" : "right", yanchor: fy > 0.5 ? "bottom" : "top" });
    }
  });
}

function onMapClick(event) {
  const run = state.run;
  if (!run || !event.points || !event.points.length) { return; }
  const p = event.points[0];
  let frame = null;
  if (p.data.type === "heatmap" && Array.isArray(p.pointIndex)) {
    frame = frameOf(p.pointIndex[0], p.pointIndex[1], run.geometry);
  } else if (typeof p.customdata === "number") {
    frame = p.customdata;
  }
  if (frame === null || !state.index.has(frame)) { return; }
  showFrame(frame);
}

// ---------------------------------------------------------------------------------------------- frame
function clearFrame() {
  $("frame-title").textContent = "frame: click a cell of the map";
  for (const id of ["dl-csv", "dl-dat"]) { $(id).classList.add("disabled"); $(id).removeAttribute("href"); }
  Plotly.react("frame", [], EMPTY_LAYOUT, PLOT_CONFIG);
  $("spot-table").querySelector("thead").replaceChildren();
  $("spot-table").querySelector("tbody").replaceChildren();
  $("table-title").textContent = "spot table";
  state.spots = null;
  state.picture = null;
}

function spotRows(columns) {
  const n = columns.spot ? columns.spot.length : 0;
  const rows = [];
  for (let i = 0; i < n; i++) {
    const s = {};
    for (const [k, v] of Object.entries(columns)) { s[k] = v[i]; }
    rows.push(s);
  }
  return rows;
}

function spotTraces(rows) {
  const groups = CATEGORIES.map(() => []);
  for (const s of rows) { groups[CATEGORIES.findIndex((c) => c.test(s))].push(s); }
  return CATEGORIES.map((cat, k) => ({
    type: "scatter", mode: "markers", name: `${cat.name} (${groups[k].length})`,
    x: groups[k].map((s) => s.col), y: groups[k].map((s) => s.row),
    customdata: groups[k].map((s) => [s.spot, s.sim, s.intensity]),
    marker: cat.marker,
    hovertemplate: `spot %{customdata[0]} (${cat.name}): Sim %{customdata[1]:.2f}<br>row %{y:.2f} px, col %{x:.2f} px`
      + "<br>intensity %{customdata[2]:.4g} ADU<extra></extra>",
  }));
}

function pictureTraces(picture) {
  if (!picture) { return []; }
  return [{
    type: "image", source: picture.src, x0: picture.x0, y0: picture.y0, dx: picture.dx, dy: picture.dy,
    hoverinfo: "skip", name: "frame",
  }, {
    // the picture's grey scale as a labelled colour bar (an image trace has none of its own)
    type: "scatter", mode: "markers", x: [null], y: [null], hoverinfo: "skip", showlegend: false,
    marker: { color: [picture.vmin], cmin: picture.vmin, cmax: picture.vmax, showscale: true,
      colorscale: [[0, "#ffffff"], [1, "#000000"]],
      colorbar: { title: { text: "intensity (ADU)", side: "right" }, thickness: 12, x: 1.02 } },
  }];
}

function frameLayout(picture, title, uirevision) {
  const [rows, cols] = picture ? picture.shape : [null, null];
  return {
    margin: { l: 60, r: 10, t: title ? 30 : 8, b: 44 }, uirevision,
    title: title ? { text: title, font: { size: 13 } } : undefined,
    xaxis: { title: { text: "column (px)" }, range: cols ? [-0.5, cols - 0.5] : undefined, constrain: "domain" },
    yaxis: { title: { text: "row (px)" }, range: rows ? [rows - 0.5, -0.5] : undefined, scaleanchor: "x" },
    legend: { orientation: "h", y: -0.1 },
  };
}

async function showFrame(frame) {
  const run = state.run;
  state.frame = frame;
  drawMap();
  const uid = run.uid;
  const base = `/api/run/${encodeURIComponent(uid)}/frame/${frame}`;
  $("frame-title").textContent = `frame ${frame}: loading …`;
  const [spots, picture] = await Promise.allSettled([getJSON(base), getJSON(`${base}/image`)]);
  if (state.frame !== frame || !state.run || state.run.uid !== uid) { return; }
  if (spots.status === "rejected") {
    $("frame-title").textContent = `frame ${frame}: ${spots.reason.message}`;
    return;
  }
  state.spots = spots.value;
  state.picture = picture.status === "fulfilled" ? picture.value : null;
  const s = spots.value.summary;
  const rows = spotRows(spots.value.columns);
  $("frame-title").textContent = `frame ${frame}: ${s.n_spots} spots, ${s.n_good} good, mean Sim ${fmt(s.mean_sim, 2)}`
    + (s.error ? ` · FAILED: ${s.error}` : "");
  $("frame-title").dataset.spots = String(s.n_spots);
  $("frame-note").textContent = state.picture ? "Drag to zoom (the frame is re-read at full resolution), double-click to reset."
    : `No picture of the frame (${picture.reason.message}); spots drawn on the detector area.`;
  for (const [id, ext] of [["dl-csv", "csv"], ["dl-dat", "dat"]]) {
    $(id).href = `${base}/spots.${ext}`;
    $(id).classList.remove("disabled");
  }
  const traces = [...pictureTraces(state.picture), ...spotTraces(rows)];
  Plotly.react("frame", traces, frameLayout(state.picture, null, `${uid}-${frame}`), PLOT_CONFIG);
  renderTable();
}

function onFrameZoom(event) {
  if (!state.picture || !state.run || state.frame === null) { return; }
  if (!("xaxis.range[0]" in event) && !("xaxis.autorange" in event) && !("yaxis.range[0]" in event)) { return; }
  window.clearTimeout(state.zoomTimer);
  state.zoomTimer = window.setTimeout(refineZoom, 250);
}

async function refineZoom() {
  const gd = $("frame");
  const xr = gd.layout.xaxis.range, yr = gd.layout.yaxis.range;
  const [rows, cols] = state.picture.shape;
  const frame = state.frame, uid = state.run.uid;
  const c0 = Math.max(0, Math.floor(Math.min(...xr))), c1 = Math.min(cols, Math.ceil(Math.max(...xr)) + 1);
  const r0 = Math.max(0, Math.floor(Math.min(...yr))), r1 = Math.min(rows, Math.ceil(Math.max(...yr)) + 1);
  const whole = c0 <= 0 && r0 <= 0 && c1 >= cols && r1 >= rows;
  const base = `/api/run/${encodeURIComponent(uid)}/frame/${frame}/image`;
  const url = whole ? base : `${base}?r0=${r0}&r1=${r1}&c0=${c0}&c1=${c1}&max_px=${Math.round(gd.clientWidth || 800)}`;
  try {
    const picture = await getJSON(url);
    if (state.frame !== frame || state.run.uid !== uid) { return; }
    Plotly.restyle("frame", { source: [picture.src], x0: [picture.x0], y0: [picture.y0], dx: [picture.dx],
      dy: [picture.dy] }, [0]);
    Plotly.restyle("frame", { "marker.cmin": [picture.vmin], "marker.cmax": [picture.vmax] }, [1]);
  } catch (e) {
    $("frame-note").textContent = `zoom: ${e.message}`;
  }
}

// ---------------------------------------------------------------------------------------------- table
function renderTable() {
  const data = state.spots;
  if (!data) { return; }
  const columns = Object.keys(data.columns);
  const head = $("spot-table").querySelector("thead");
  const body = $("spot-table").querySelector("tbody");
  const tr = document.createElement("tr");
  for (const c of columns) {
    const th = document.createElement("th");
    th.textContent = data.units[c] ? `${c} (${data.units[c]})` : c;
    th.dataset.column = c;
    if (state.sort.column === c) { th.className = state.sort.dir > 0 ? "sorted-asc" : "sorted-desc"; }
    tr.appendChild(th);
  }
  head.replaceChildren(tr);
  const rows = spotRows(data.columns);
  const { column, dir } = state.sort;
  rows.sort((a, b) => {
    const x = a[column], y = b[column];
    if (x === y) { return 0; }
    if (x === null || x === undefined) { return 1; }
    if (y === null || y === undefined) { return -1; }
    return (x < y ? -1 : 1) * dir;
  });
  const html = rows.map((s) => "<tr>" + columns.map((c) => {
    const v = s[c];
    const cls = typeof v === "boolean" ? ` class="flag-${v}"` : "";
    return `<td${cls}>${fmt(v, c === "sim" || c === "asp" ? 3 : 2)}</td>`;
  }).join("") + "</tr>").join("");
  body.innerHTML = html;
  $("table-title").textContent = `spot table: frame ${data.frame}, ${rows.length} spots`;
}

function onTableHeadClick(event) {
  const th = event.target.closest("th");
  if (!th) { return; }
  const c = th.dataset.column;
  state.sort = { column: c, dir: state.sort.column === c ? -state.sort.dir : 1 };
  renderTable();
}

// ------------------------------------------------------------------------------------- latest frame
function onLatest(message) {
  state.latest = message;
  scheduleLatest();
}

function scheduleLatest() {
  if (state.latestTimer !== null || !state.latest || document.hidden) { return; }
  const wait = Math.max(0, state.latestFetched + state.latestInterval - Date.now());
  state.latestTimer = window.setTimeout(fetchLatest, wait);
}

async function fetchLatest() {
  state.latestTimer = null;
  const latest = state.latest;
  if (!latest || document.hidden) { return; }
  const key = `${latest.uid}-${latest.frame}`;
  if (key === state.latestShown) { return; }
  state.latestFetched = Date.now();
  state.latestShown = key;
  const base = `/api/run/${encodeURIComponent(latest.uid)}/frame/${latest.frame}`;
  const [spots, picture] = await Promise.allSettled([getJSON(base), getJSON(`${base}/image?max_px=512`)]);
  if (spots.status === "fulfilled") {
    const s = spots.value.summary;
    $("latest-title").textContent = `latest frame: ${latest.frame} · ${s.n_spots} spots, ${s.n_good} good`
      + (s.error ? " · FAILED" : "");
    const pic = picture.status === "fulfilled" ? picture.value : null;
    const traces = [...pictureTraces(pic), ...spotTraces(spotRows(spots.value.columns))];
    const layout = frameLayout(pic, null, "latest");
    layout.showlegend = false;
    Plotly.react("latest", traces, layout, { ...PLOT_CONFIG, staticPlot: false });
  }
  if (state.latest && `${state.latest.uid}-${state.latest.frame}` !== key) { scheduleLatest(); }
}

// --------------------------------------------------------------------------------------------- health
function put(dl, label, value, level) {
  const dt = document.createElement("dt");
  dt.textContent = label;
  const dd = document.createElement("dd");
  dd.textContent = value;
  if (level) { dd.className = level; }
  dl.append(dt, dd);
}

function renderHealth(h) {
  const st = h.status || {};
  const run = h.run || {};
  const stream = h.stream || {};
  const sinks = st.sinks || {};
  if (h.dashboard && h.dashboard.latest_interval) { state.latestInterval = 1000 * h.dashboard.latest_interval; }
  const dl = $("health");
  dl.replaceChildren();
  const acquired = st.frames_acquired ?? ((st.frames_analysed || 0) + (st.frames_failed || 0) + (st.frames_dropped || 0)
    + (st.queue_depth || 0));
  const hasStatus = Object.keys(st).length > 0;
  put(dl, "service", hasStatus ? `${st.state}${h.service_silent ? " (silent)" : ""}` : "no status yet",
    h.service_silent ? "bad" : "");
  put(dl, "frames/s", hasStatus ? fmt(st.frames_per_s, 2) : "–");
  put(dl, "acquired", hasStatus ? fmt(acquired) : "–");
  put(dl, "analysed", hasStatus ? fmt(st.frames_analysed) : "–");
  put(dl, "failed", hasStatus ? fmt(st.frames_failed) : "–", st.frames_failed ? "warn" : "");
  put(dl, "dropped", hasStatus ? fmt(st.frames_dropped) : "–", st.frames_dropped ? "bad" : "");
  put(dl, "backlog", hasStatus ? `${fmt(st.queue_depth)} frames` : "–", st.queue_depth > 50 ? "warn" : "");
  put(dl, "device", hasStatus ? `${st.device || "?"}, ${st.method || "?"}` : "–");
  const tiled = sinks.tiled || {};
  put(dl, "Tiled writer", tiled.state ? `${tiled.state}${tiled.runs_pending ? `, ${tiled.runs_pending} run(s) pending` : ""}` : "–",
    tiled.errors ? "warn" : "");
  const zmq = sinks.zmq || {};
  put(dl, "0MQ publisher", zmq.state ? `${zmq.state}, ${fmt(zmq.subscribers)} subscriber(s), ${fmt(zmq.dropped)} dropped` : "–",
    zmq.dropped ? "warn" : "");
  put(dl, "spot stream", stream.address ? `${stream.connected ? "connected" : "waiting"} (${stream.address}), `
    + `${fmt(stream.missed)} missed` : "off", stream.address && !stream.connected ? "warn" : "");
  const cat = h.catalog || {};
  put(dl, "catalog", cat.configured ? (cat.error ? cat.error : "ok") : "off", cat.error ? "bad" : "");
  if (run.uid) {
    put(dl, "this run", `${fmt(run.frames)} frames shown, ${fmt(run.failed)} failed${run.ended ? ", ended" : ""}`,
      run.failed ? "warn" : "");
  }
  const errors = [...(run.errors || [])];
  for (const [raw, why] of Object.entries(st.recovery || {})) {
    if (String(why).startsWith("failed")) { errors.push(`recovery of ${raw.slice(0, 8)}: ${why}`); }
  }
  if (cat.error) { errors.push(`catalog: ${cat.error}`); }
  $("errors").replaceChildren(...errors.slice(-8).map((e) => { const li = document.createElement("li"); li.textContent = e; return li; }));
  const badge = $("badge");
  const bad = h.service_silent || cat.error || st.frames_dropped > 0;
  const warn = st.frames_failed > 0 || (stream.address && !stream.connected) || zmq.dropped > 0;
  badge.className = `badge ${bad ? "bad" : warn ? "warn" : hasStatus || run.uid ? "ok" : ""}`;
  badge.textContent = !hasStatus ? (run.uid ? "live stream, no service status"
    : stream.address ? "waiting for the service" : "past runs")
    : `${st.state} · ${fmt(st.frames_per_s, 1)} frames/s`;
}

// ------------------------------------------------------------------------------------------ websocket
function connect() {
  const ws = new WebSocket(`${window.location.protocol === "https:" ? "wss" : "ws"}://${window.location.host}/ws`);
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "runs") {
      state.liveCurrent = message.current;
      if (state.follow && message.current && (!state.run || state.run.uid !== message.current)) {
        loadRun(message.current);
      }
    } else if (message.type === "frames") {
      if (mergeFrames(message)) { scheduleMap(); }
    } else if (message.type === "grains") {
      if (mergeGrains(message)) { scheduleMap(); }
    } else if (message.type === "latest") {
      onLatest(message);
    } else if (message.type === "health") {
      renderHealth(message);
    }
  };
  ws.onclose = () => {
    $("badge").className = "badge bad";
    $("badge").textContent = "disconnected: retrying";
    window.setTimeout(connect, 2000);
  };
}

// ------------------------------------------------------------------------------------------------ init
function init() {
  $("run-search").addEventListener("submit", findRuns);
  $("run-select").addEventListener("change", pickRun);
  $("follow").addEventListener("change", () => {
    state.follow = $("follow").checked;
    if (state.follow && state.liveCurrent) { loadRun(state.liveCurrent); }
  });
  $("map-value").addEventListener("change", () => { state.valueName = $("map-value").value; drawMap(); });
  $("spot-table").querySelector("thead").addEventListener("click", onTableHeadClick);
  document.addEventListener("visibilitychange", scheduleLatest);
  Plotly.newPlot("map", [], EMPTY_LAYOUT, PLOT_CONFIG);
  $("map").on("plotly_click", onMapClick);
  Plotly.newPlot("frame", [], EMPTY_LAYOUT, PLOT_CONFIG);
  $("frame").on("plotly_relayout", onFrameZoom);
  Plotly.newPlot("latest", [], EMPTY_LAYOUT, PLOT_CONFIG);
  findRuns(null).then(() => {
    const select = $("run-select");
    if (!state.run && select.value) { loadRun(select.value); }
  });
  connect();
}

init();
