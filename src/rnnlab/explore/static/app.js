// rnnlab explore: the page's behaviour. Plain JavaScript, no libraries; talks only to this server's /api routes.
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function api(route, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(route, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

function fmt(x, digits = 3) {
  return x === null || x === undefined ? "–" : Number(x).toFixed(digits);
}

// ---- tabs ------------------------------------------------------------------------------
let trainingTimer = null;

function showPanel(name) {
  for (const button of document.querySelectorAll("#tabs button")) {
    button.classList.toggle("active", button.dataset.panel === name);
  }
  for (const panel of document.querySelectorAll(".panel")) panel.hidden = panel.id !== `panel-${name}`;
  if (name === "training") refreshTraining();
}

// ---- colours ---------------------------------------------------------------------------
function bitsColour(bits, top) {
  // 0 bits: green, `top` bits or more: red (light, so the text stays readable).
  const t = Math.min(1, Math.max(0, bits / top));
  return `hsl(${Math.round(120 * (1 - t))}, 75%, ${Math.round(86 - 10 * t)}%)`;
}

function signedColour(value, top, positive, negative) {
  // Diverging scale: white at 0, `positive` hue above, `negative` hue below, full at |value| >= top.
  const t = Math.min(1, Math.abs(value) / top);
  return `hsl(${value >= 0 ? positive : negative}, 70%, ${Math.round(100 - 32 * t)}%)`;
}

function legend(target, stops) {
  target.replaceChildren();
  for (const [colour, label] of stops) {
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colour;
    const text = document.createElement("span");
    text.textContent = label;
    target.append(swatch, text);
  }
}

function tokenSpan(text, colour, title) {
  const span = document.createElement("span");
  span.className = "tok";
  span.textContent = text;
  if (colour) span.style.background = colour;
  if (title) span.title = title;
  return span;
}

// ---- generate --------------------------------------------------------------------------
let generation = null;

function generationOptions() {
  const seed = $("gen-seed").value.trim();
  return {
    prefix: $("gen-prefix").value,
    length: Number($("gen-length").value),
    temperature: Number($("gen-temperature").value),
    top_k: Number($("gen-topk").value),
    top_p: Number($("gen-topp").value),
    greedy: $("gen-greedy").checked,
    seed: seed === "" ? null : Number(seed),
  };
}

async function startGeneration(event) {
  event.preventDefault();
  if (generation) return;
  showError("");
  const output = $("gen-output");
  output.replaceChildren();
  const controller = new AbortController();
  generation = controller;
  $("gen-start").disabled = true;
  $("gen-stop").disabled = false;
  let count = 0;
  const started = performance.now();
  const status = (text) => { $("gen-status").textContent = text; };
  status("generating…");
  try {
    const response = await fetch("/api/generate", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(generationOptions()), signal: controller.signal,
    });
    if (!response.ok) throw new Error((await response.json()).error || `HTTP ${response.status}`);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        for (const line of frame.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const message = JSON.parse(line.slice(6));
          if (message.type === "start") {
            const prefix = document.createElement("span");
            prefix.className = "prefix";
            prefix.textContent = message.prefix;
            output.append(prefix);
          } else if (message.type === "token") {
            count += 1;
            output.append(tokenSpan(message.piece, null, `p = ${fmt(message.p, 4)}`));
            status(`${count} tokens, ${(count / ((performance.now() - started) / 1000)).toFixed(0)} tokens/s`);
          } else if (message.type === "done") {
            status(`${message.tokens} tokens in ${fmt(message.seconds, 2)} s (stopped by ${message.stopped})`);
          } else if (message.type === "error") {
            showError(message.error);
          }
        }
      }
    }
  } catch (error) {
    if (error.name === "AbortError") status(`stopped after ${count} tokens`);
    else showError(error.message);
  } finally {
    generation = null;
    $("gen-start").disabled = false;
    $("gen-stop").disabled = true;
  }
}

function stopGeneration() {
  if (generation) generation.abort();
}

// ---- surprisal -------------------------------------------------------------------------
let lastSurprisal = null;

async function score(body) {
  showError("");
  $("sur-summary").textContent = "scoring…";
  try {
    lastSurprisal = await api("/api/surprisal", body);
    drawSurprisal();
  } catch (error) {
    $("sur-summary").textContent = "";
    showError(error.message);
  }
}

function describe(summary) {
  return `${summary.tokens} tokens, ${fmt(summary.total_bits, 1)} bits, ${fmt(summary.bits_per_char)} bits/char, ` +
    `perplexity ${fmt(summary.perplexity)}`;
}

function drawSurprisal() {
  const data = lastSurprisal;
  if (!data) return;
  const gain = $("sur-colour").value === "gain" && data.ngram;
  const output = $("sur-output");
  output.replaceChildren();
  let text = `RNN: ${describe(data.summary)}`;
  if (data.ngram) text += ` | ${data.ngram.name}: ${describe(data.ngram.summary)}`;
  $("sur-summary").textContent = `${data.source}: ${text}`;
  const top = 8;
  if (gain) {
    legend($("sur-legend"), [[signedColour(4, 4, 215, 30), "RNN 4+ bits better"], ["#fff", "equal"],
      [signedColour(-4, 4, 215, 30), "n-gram 4+ bits better"]]);
  } else {
    legend($("sur-legend"), [[bitsColour(0, top), "0 bits"], [bitsColour(top / 2, top), `${top / 2}`],
      [bitsColour(top, top), `${top}+ bits`]]);
  }
  const fragment = document.createDocumentFragment();
  data.pieces.forEach((piece, i) => {
    const bits = data.bits[i];
    if (bits === null) { fragment.append(tokenSpan(piece, null, "first token: read, not predicted")); return; }
    let title = `${fmt(bits, 2)} bits (p = ${fmt(2 ** -bits, 4)})`;
    let colour = bitsColour(bits, top);
    if (data.ngram) {
      const other = data.ngram.bits[i];
      title += ` | n-gram ${fmt(other, 2)} bits`;
      if (gain) colour = data.ngram.gain[i] === null ? null : signedColour(data.ngram.gain[i], 4, 215, 30);
    }
    fragment.append(tokenSpan(piece, colour, title));
  });
  output.append(fragment);
}

// ---- hidden units ----------------------------------------------------------------------
let unitsRequest = null;

async function analyseUnits(unit) {
  showError("");
  const body = unitsRequest ? { ...unitsRequest } : { text: $("units-text").value };
  const feature = $("units-feature").value;
  if (feature) body.feature = feature;
  if (unit !== undefined) body.unit = unit;
  $("units-summary").textContent = "computing…";
  try {
    const data = await api("/api/units", body);
    drawUnits(data, unit === undefined);
  } catch (error) {
    $("units-summary").textContent = "";
    showError(error.message);
  }
}

function drawUnits(data, newList) {
  if (newList) {
    const list = $("units-list");
    list.replaceChildren();
    for (const entry of data.ranking) {
      const option = document.createElement("option");
      option.value = entry.unit;
      option.textContent = `${entry.name.padEnd(18)} ${entry.r === null ? "  –  " : entry.r.toFixed(2).padStart(5)} ${entry.feature || ""}`;
      list.append(option);
    }
    $("units-count").textContent = `${data.units} units; ${data.ranking.length} listed by |r|`;
  }
  $("units-list").value = String(data.unit);
  const [low, high] = data.range;
  // Relative to the unit's own range over this text: a cell may never change sign, yet track a feature.
  const middle = (low + high) / 2, half = Math.max((high - low) / 2, 1e-6);
  $("units-summary").textContent = `${data.name}: values from ${fmt(low)} (blue) to ${fmt(high)} (red)`;
  const table = $("units-corr");
  table.replaceChildren();
  const head = table.insertRow();
  const row = table.insertRow();
  for (const [name, r] of Object.entries(data.correlations)) {
    head.insertCell().textContent = name;
    row.insertCell().textContent = r === null ? "–" : r.toFixed(3);
  }
  const output = $("units-output");
  output.replaceChildren();
  const fragment = document.createDocumentFragment();
  data.pieces.forEach((piece, i) => {
    const value = data.values[i];
    fragment.append(tokenSpan(piece, value === null ? null : signedColour(value - middle, half, 0, 215), `${fmt(value, 3)}`));
  });
  output.append(fragment);
}

// ---- training --------------------------------------------------------------------------
function chart(svg, series, xKey, { log = false, lines = [] } = {}) {
  const W = 640, H = Number(svg.viewBox.baseVal.height), left = 52, right = 12, top = 10, bottom = 26;
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  const make = (tag, attrs) => {
    const el = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    svg.append(el);
    return el;
  };
  const points = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!log || y > 0));
  const ys = points.map((p) => p[1]).concat(lines.map((l) => l.value).filter((v) => Number.isFinite(v) && (!log || v > 0)));
  if (!points.length) {
    make("text", { x: W / 2 - 40, y: H / 2 }).textContent = "no records yet";
    return;
  }
  const f = log ? Math.log10 : (v) => v;
  const xs = points.map((p) => p[0]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs) === x0 ? x0 + 1 : Math.max(...xs);
  let y0 = Math.min(...ys.map(f)), y1 = Math.max(...ys.map(f));
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  const pad = (y1 - y0) * 0.05;
  y0 -= pad; y1 += pad;
  const X = (x) => left + (W - left - right) * (x - x0) / (x1 - x0);
  const Y = (y) => top + (H - top - bottom) * (1 - (f(y) - y0) / (y1 - y0));
  for (let i = 0; i <= 4; i++) {
    const yv = y0 + (y1 - y0) * i / 4;
    const y = top + (H - top - bottom) * (1 - i / 4);
    make("line", { x1: left, x2: W - right, y1: y, y2: y, class: "grid" });
    make("text", { x: 4, y: y + 4 }).textContent = (log ? 10 ** yv : yv).toPrecision(3);
    const xv = x0 + (x1 - x0) * i / 4;
    make("text", { x: X(xv) - 12, y: H - 8 }).textContent = Number(xv.toPrecision(4)).toString();
  }
  make("line", { x1: left, x2: left, y1: top, y2: H - bottom, class: "axis" });
  make("line", { x1: left, x2: W - right, y1: H - bottom, y2: H - bottom, class: "axis" });
  lines.forEach((line, i) => {
    if (!Number.isFinite(line.value) || (log && line.value <= 0)) return;
    make("line", { x1: left, x2: W - right, y1: Y(line.value), y2: Y(line.value), stroke: line.colour,
      "stroke-dasharray": "5 4", "stroke-width": 1.2 });
    // Labels staggered: baselines often lie close together (two Kneser-Ney models of one order).
    make("text", { x: W - right - 190 * (i + 1) + 40, y: Y(line.value) - 3 }).textContent =
      `${line.label} ${line.value.toFixed(3)}`;
  });
  let legendX = left + 8;
  for (const s of series) {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!log || y > 0));
    if (!pts.length) continue;
    make("polyline", { points: pts.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(" "),
      fill: "none", stroke: s.colour, "stroke-width": 1.8 });
    make("rect", { x: legendX, y: top + 4, width: 12, height: 3, fill: s.colour });
    make("text", { x: legendX + 16, y: top + 9 }).textContent = s.label;
    legendX += 24 + 7 * s.label.length;
  }
}

async function refreshTraining() {
  clearTimeout(trainingTimer);
  let data;
  try {
    data = await api("/api/training");
  } catch (error) {
    showError(error.message);
    return;
  }
  const xKey = $("train-x").value;
  const records = data.records;
  const pick = (key) => records.map((r) => [r[xKey], r[key] === null || r[key] === undefined ? NaN : r[key]]);
  const colours = ["#8a5a00", "#6a3d9a", "#b15928"];
  const baselineLines = Object.entries(data.baselines || {}).map(([label, value], i) => ({ label, value, colour: colours[i % 3] }));
  // The folder's kind says which record keys to draw (perplexity; a task's metric and losses).
  const holder = $("train-metric-charts");
  holder.replaceChildren();
  const seriesColours = ["#2f6db5", "#c0392b"];
  data.charts.forEach((spec, i) => {
    const figure = document.createElement("figure");
    const caption = document.createElement("figcaption");
    caption.textContent = spec.title;
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.id = `chart-metric-${i}`;
    svg.setAttribute("viewBox", "0 0 640 300");
    figure.append(caption, svg);
    holder.append(figure);
    chart(svg, spec.series.map(([key, label], j) => ({ label, colour: seriesColours[j % 2], points: pick(key) })),
      xKey, { log: spec.log, lines: i === 0 ? baselineLines : [] });
  });
  chart($("chart-lr"), [{ label: "lr", colour: "#2a8a4a", points: pick("lr") }], xKey);
  chart($("chart-grad"), [
    { label: "mean", colour: "#2f6db5", points: pick("grad_norm_mean") },
    { label: "max", colour: "#999", points: pick("grad_norm_max") },
  ], xKey);
  const writing = data.seconds_since_write !== null && data.seconds_since_write < 120 && !data.stopped;
  const last = records[records.length - 1];
  const [quotedKey, quotedLabel] = data.charts[0].series[0];
  $("train-status").textContent = !data.metrics_file ? "this folder has no metrics.jsonl" :
    `${records.length} evaluations; last: step ${last ? last.step : "–"}, ${quotedLabel} ` +
    `${fmt(last && last[quotedKey])}${data.stopped ? `; stopped by ${data.stopped}` : ""}` +
    (writing ? " — the run is still writing: refreshing every 3 s" : "");
  $("train-baselines-section").hidden = data.baselines === null;
  const baselines = $("train-baselines");
  baselines.replaceChildren();
  const entries = Object.entries(data.baselines || {});
  if (!entries.length) baselines.insertRow().insertCell().textContent = "not available (the corpus was not found)";
  for (const [name, value] of entries) {
    const row = baselines.insertRow();
    row.insertCell().textContent = name;
    row.insertCell().textContent = fmt(value);
  }
  const config = $("train-config");
  config.replaceChildren();
  for (const [section, values] of [["model", data.model], ["data", data.data], ["training", data.train_config]]) {
    for (const [key, value] of Object.entries(values)) {
      const row = config.insertRow();
      row.insertCell().textContent = section;
      row.insertCell().textContent = key;
      row.insertCell().textContent = typeof value === "object" ? JSON.stringify(value) : String(value);
    }
  }
  if (writing && !$("panel-training").hidden) trainingTimer = setTimeout(refreshTraining, 3000);
}

// ---- classifier and tagger folders --------------------------------------------------------
// A folder of rnnlab classify train or tag train gets one panel: type a text, see what the model says.
const ENTITY_COLOURS = ["#ffd8a8", "#b2f2bb", "#a5d8ff", "#eebefa", "#ffec99", "#99e9f2", "#fcc2d7", "#d0bfff"];
const SHOWN_LABELS = 20;

function entityColour(type) {
  const index = info.entity_types.indexOf(type);
  if (index >= 0 && index < ENTITY_COLOURS.length) return ENTITY_COLOURS[index];
  return `hsl(${Math.round((Math.max(index, 0) * 137.5) % 360)}, 70%, 84%)`; // golden angle: distinct hues
}

function asTypingUpdates(textarea, button, run) {
  // Each answer is drawn only if no later request was sent meanwhile (answers may arrive out of order).
  let latest = 0, timer = null;
  const go = async () => {
    clearTimeout(timer);
    const mine = ++latest;
    const text = textarea.value;
    if (!text.trim()) return;
    await run(text, () => mine === latest);
  };
  button.addEventListener("click", go);
  textarea.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(go, 250); });
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); go(); }
  });
  return go;
}

async function answerIfCurrent(route, text, summary, busy, current) {
  // The route's answer for the text, or null: on an error (shown) or when a later request was sent.
  showError("");
  summary.textContent = busy;
  try {
    const data = await api(route, { text });
    return current() ? data : null;
  } catch (error) {
    if (current()) { summary.textContent = ""; showError(error.message); }
    return null;
  }
}

async function classify(text, current) {
  const data = await answerIfCurrent("/api/classify", text, $("cls-summary"), "classifying…", current);
  if (!data) return;
  const tokens = $("cls-tokens");
  tokens.replaceChildren();
  data.tokens.forEach((token, i) => {
    const span = tokenSpan(token, null, data.unknown[i] ? "not in the vocabulary: read as <unk>" : null);
    if (data.unknown[i]) span.classList.add("unknown");
    tokens.append(span, info.tokens === "word" && i + 1 < data.tokens.length ? " " : ""); // char tokens hold their spaces
  });
  const unknown = data.unknown.filter(Boolean).length;
  const top = data.probabilities[0];
  $("cls-summary").textContent = `predicted: ${data.label} (p = ${fmt(top.p, 3)}); ${data.tokens.length} ` +
    `${info.tokens} tokens, ${unknown} unknown`;
  const table = $("cls-bars");
  table.replaceChildren();
  for (const { label, p } of data.probabilities.slice(0, SHOWN_LABELS)) {
    const row = table.insertRow();
    if (label === data.label) row.className = "predicted";
    row.insertCell().className = "label";
    row.cells[0].textContent = label === data.label ? `▶ ${label}` : label;
    const bar = row.insertCell();
    bar.className = "bar";
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = `${(100 * p).toFixed(2)}%`;
    bar.append(fill);
    const value = row.insertCell();
    value.className = "p";
    value.textContent = `${(100 * p).toFixed(1)}%`;
  }
  if (data.probabilities.length > SHOWN_LABELS) {
    table.insertRow().insertCell().textContent = `and ${data.probabilities.length - SHOWN_LABELS} more labels`;
  }
}

function tagToken(word, tag, unknown) {
  const box = document.createElement("span");
  box.className = unknown ? "token unknown" : "token";
  if (unknown) box.title = "not in the vocabulary: read by the character encoder alone";
  const w = document.createElement("span");
  w.className = "word";
  w.textContent = word;
  const t = document.createElement("span");
  t.className = "tag";
  t.textContent = tag;
  box.append(w, t);
  return box;
}

async function tagSentence(text, current) {
  const data = await answerIfCurrent("/api/tag", text, $("tag-summary"), "tagging…", current);
  if (!data) return;
  const output = $("tag-output");
  output.replaceChildren();
  let position = 0;
  for (const span of data.spans.concat([{ start: data.tokens.length }])) {
    for (; position < span.start; position++) {
      output.append(tagToken(data.tokens[position], data.tags[position], data.unknown[position]));
    }
    if (span.type === undefined) break;
    const entity = document.createElement("span");
    entity.className = "entity";
    entity.dataset.type = span.type;
    entity.style.background = entityColour(span.type);
    for (; position <= span.end; position++) {
      entity.append(tagToken(data.tokens[position], data.tags[position], data.unknown[position]));
    }
    const type = document.createElement("span");
    type.className = "type";
    type.textContent = span.type;
    entity.append(type);
    output.append(entity);
  }
  const counts = {};
  for (const span of data.spans) counts[span.type] = (counts[span.type] || 0) + 1;
  const found = Object.entries(counts).map(([type, n]) => `${n} ${type}`).join(", ");
  $("tag-summary").textContent = `${data.tokens.length} tokens` +
    (info.entity_types.length ? `; entities: ${found || "none"}` : "");
}

function startTaskPanel() {
  const panel = info.kind === "classifier" ? "classify" : "tag";
  for (const button of document.querySelectorAll("#tabs button")) {
    button.hidden = button.dataset.panel !== panel && button.dataset.panel !== "training";
  }
  const m = info.model;
  const shape = `${m.bidirectional === false ? "" : "bidirectional "}${m.cell || "lstm"}, ${m.num_layers || 1}×${m.hidden_size || "?"}`;
  const what = info.kind === "classifier"
    ? `classifier (${shape}, ${m.pooling || "?"} pooling), ${info.labels.length} labels, ${info.vocab_size} ${info.tokens} tokens`
    : `tagger (${shape}${m.crf ? " + CRF" : ""}), ${info.tags.length} tags, ${info.vocab_size} words`;
  $("model-info").textContent = `${info.folder}: ${what}, ${info.parameters.toLocaleString()} parameters`;
  for (const id of ["cls-text", "tag-text"]) $(id).maxLength = info.limits.text_chars;
  if (info.kind === "classifier") {
    asTypingUpdates($("cls-text"), $("cls-run"), classify);
  } else {
    asTypingUpdates($("tag-text"), $("tag-run"), tagSentence);
    legend($("tag-legend"), info.entity_types.map((type) => [entityColour(type), type]));
  }
  showPanel(panel);
}

// ---- start -----------------------------------------------------------------------------
async function start() {
  for (const button of document.querySelectorAll("#tabs button")) {
    button.addEventListener("click", () => showPanel(button.dataset.panel));
  }
  $("gen-form").addEventListener("submit", startGeneration);
  $("gen-stop").addEventListener("click", stopGeneration);
  $("sur-score").addEventListener("click", () => score({ text: $("sur-text").value }));
  $("sur-validation").addEventListener("click", () => score({ source: "validation" }));
  $("sur-colour").addEventListener("change", drawSurprisal);
  $("units-run").addEventListener("click", () => { unitsRequest = { text: $("units-text").value }; analyseUnits(); });
  $("units-validation").addEventListener("click", () => { unitsRequest = { source: "validation" }; analyseUnits(); });
  $("units-feature").addEventListener("change", () => analyseUnits());
  $("units-list").addEventListener("change", () => analyseUnits(Number($("units-list").value)));
  $("train-x").addEventListener("change", refreshTraining);
  try {
    info = await api("/api/info");
  } catch (error) {
    showError(error.message);
    return;
  }
  if (info.kind === "classifier" || info.kind === "tagger") {
    startTaskPanel();
    return;
  }
  const m = info.model;
  $("model-info").textContent = `${info.folder}: ${m.model} ${m.num_layers || ""}×${m.hidden_size || ""}, ` +
    `${info.parameters.toLocaleString()} parameters, ${info.vocab_size} ${info.token} tokens (${info.mode} mode)` +
    (info.ngram ? `; n-gram: ${info.ngram}` : "");
  $("gen-length").max = info.limits.generate_tokens;
  $("gen-topk").max = info.vocab_size;
  for (const id of ["sur-validation", "units-validation"]) {
    $(id).disabled = !info.validation;
    if (!info.validation) $(id).title = info.validation_problem || "not available";
  }
  $("sur-colour-label").hidden = !info.ngram;
  for (const [name, help] of Object.entries(info.features)) {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = name;
    option.title = help;
    $("units-feature").append(option);
  }
}

document.addEventListener("DOMContentLoaded", start);
