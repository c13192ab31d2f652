// The hashseek page: a paged gallery of one collection, search by any picture, random or upload.
// Plain JavaScript against the REST API (see /docs); the server pages the library, so the page
// never holds more than one page of it, whatever the collection's size. manage.js (adding, removing,
// relabelling) and training.js (the model panel) plug in through `hooks`.
"use strict";

const PAGE_SIZE = 48;
const $ = (id) => document.getElementById(id);
// summary: the collection's entry of /api/collections (writable, needs_api_key); apiKey: the key typed in
const state = { collections: [], collection: null, summary: null, info: null, offset: 0, label: "", apiKey: null };
// Extensions register here: start() before the first collection loads, collection(info) after a collection
// (re)loads, card(figure, item) for each gallery card, drop(dataTransfer) -> true when it took a drop (else
// the drop's first file is searched with).
const hooks = { start: [], collection: [], card: [], drop: [] };

// ------------------------------------------------------------------------------------ API
// Writes carry the API key typed into the page (reads never need it).
async function api(path, options = {}) {
  if (state.apiKey && options.method && options.method !== "GET") {
    options = { ...options, headers: { ...(options.headers || {}), "X-API-Key": state.apiKey } };
  }
  const response = await fetch(path, options);
  const text = await response.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON: a proxy's error page, say */ }
  if (!response.ok) {
    const error = new Error(describeError(response.status, body, text));
    error.status = response.status;
    throw error;
  }
  return body;
}

function describeError(status, body, text) {
  const detail = body && body.detail;
  if (Array.isArray(detail)) return detail.map((d) => `${d.loc[d.loc.length - 1]}: ${d.msg}`).join("; ");
  return `${status}: ${detail || text || "request failed"}`;
}

const collectionUrl = () => `/api/collections/${encodeURIComponent(state.collection)}`;

// The settings as query parameters; an empty field is left out, so the server's default applies.
function searchParams(kInput = "k-input") {
  const params = new URLSearchParams();
  const k = $(kInput).value;
  const radius = $("radius-input").value;
  const rerank = $("rerank-select").value;
  if (k !== "") params.set("k", k);
  if (radius !== "") params.set("radius", radius);
  params.set("rerank", rerank || "none");
  if (rerank && $("candidates-input").value !== "") params.set("candidates", $("candidates-input").value);
  return params;
}

// The settings form starts from the server's search defaults.
async function loadDefaults() {
  const defaults = await api("/api/search-defaults");
  $("k-input").value = defaults.k;
  $("vote-k-input").value = defaults.vote_k;
  $("rerank-select").value = defaults.rerank ?? "";
  $("candidates-input").value = defaults.candidates ?? "";   // empty: the server's candidate rule
}

// ------------------------------------------------------------------------------------ feedback
let errorTimer = null;
function showError(error) {
  const box = $("error");
  box.textContent = error.message || String(error);
  box.hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => { box.hidden = true; }, 8000);
}

let noticeTimer = null;
function showNotice(text) {
  const box = $("notice");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { box.hidden = true; }, 8000);
}

// Runs a task with the "busy" note (its text may change on the way: `say`); an error is shown, not thrown.
async function busy(task, text = "Loading…") {
  const box = $("busy");
  box.textContent = text;
  box.hidden = false;
  $("error").hidden = true;
  try { await task((message) => { box.textContent = message; }); }
  catch (error) { showError(error); }
  finally { box.hidden = true; }
}

// ------------------------------------------------------------------------------------ cards
// A library item, or a search hit with its rank and the name of its re-rank distance (if any).
function card(item, testid, rank, metric) {
  const figure = document.createElement("figure");
  figure.className = "card";
  figure.dataset.testid = testid;
  figure.dataset.id = item.id;
  figure.dataset.label = item.label ?? "";

  const button = document.createElement("button");
  button.type = "button";
  button.dataset.testid = "picture";
  button.title = `${item.name} — click to search with it`;
  const img = document.createElement("img");
  img.loading = "lazy";
  img.decoding = "async";
  img.src = item.thumbnail_url;
  img.alt = item.name;
  img.addEventListener("error", () => button.classList.add("missing"));   // e.g. a moved archive
  button.append(img);
  if (rank !== undefined) {
    const badge = document.createElement("span");
    badge.className = "rank";
    badge.textContent = `#${rank}`;
    button.append(badge);
  }
  button.addEventListener("click", () => searchById(item));

  const caption = document.createElement("figcaption");
  const label = document.createElement("span");
  label.className = item.label ? "label" : "label none";
  label.textContent = item.label ?? "unlabelled";
  caption.append(label);
  if (item.hamming !== undefined) {
    const distances = document.createElement("span");
    distances.className = "distances";
    distances.dataset.testid = "distances";
    distances.textContent = `Hamming ${item.hamming}` +
      (item.distance === null || !metric ? "" : ` · ${metric} ${formatDistance(item.distance)}`);
    caption.append(distances);
  }
  figure.append(button, caption);
  if (testid === "gallery-item") for (const hook of hooks.card) hook(figure, item);
  return figure;
}

function formatDistance(value) {
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3);
}

// ------------------------------------------------------------------------------------ library
async function loadCollection(name) {
  state.collection = name;
  state.summary = state.collections.find((c) => c.name === name);
  state.label = "";
  $("results-panel").hidden = true;
  await refresh(0);
}

// Reads the collection's counts and labels again (after a change), keeping the label filter when it still
// has images, and shows the page at `offset` (the current one by default, the last one past the end).
async function refresh(offset = state.offset) {
  state.info = await api(collectionUrl());
  const info = state.info;
  const classes = Object.keys(info.classes).length;
  const untrained = info.untrained_classes || {};
  const untrainedCount = Object.keys(untrained).length;
  $("collection-info").textContent =
    `${info.images.toLocaleString()} images · ${info.n_bits}-bit codes · ${classes.toLocaleString()} classes` +
    (untrainedCount ? ` · ${untrainedCount.toLocaleString()} never trained on by the model (marked *)` : "");
  $("collection-info").title = untrainedCount
    ? "The model had no training images of the labels marked *: their codes and vote rest on what it learned " +
      "of other classes. Train a model on this library's labels to include them."
    : "";
  if (state.label && !(state.label in info.classes)) state.label = "";
  const filter = $("label-filter");
  filter.replaceChildren(new Option("all labels", ""));
  for (const [label, count] of Object.entries(info.classes)) {
    filter.append(new Option(`${label}${label in untrained ? " *" : ""} (${count.toLocaleString()})`, label));
  }
  filter.value = state.label;
  const total = state.label ? info.classes[state.label] : info.images;
  const last = Math.max(0, Math.ceil(total / PAGE_SIZE) - 1) * PAGE_SIZE;
  await loadPage(Math.min(offset, last));
  for (const hook of hooks.collection) await hook(info);
}

async function loadPage(offset) {
  const params = new URLSearchParams({ offset, limit: PAGE_SIZE });
  if (state.label) params.set("label", state.label);
  const page = await api(`${collectionUrl()}/images?${params}`);
  state.offset = offset;
  $("gallery").replaceChildren(...page.items.map((item) => card(item, "gallery-item")));
  const total = state.label ? state.info.classes[state.label] : state.info.images;
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  $("page-info").textContent =
    `page ${(offset / PAGE_SIZE + 1).toLocaleString()} of ${pages.toLocaleString()} · ${total.toLocaleString()} images`;
  $("page-prev").disabled = offset === 0;
  $("page-next").disabled = !page.has_more;
}

// ------------------------------------------------------------------------------------ search
function showResults({ title, imageUrl, response, classification }) {
  $("query-title").textContent = title;
  $("query-image").src = imageUrl;
  const hits = response.hits;
  $("search-meta").textContent =
    `${hits.length} results · ${response.mode} · ${response.n_candidates.toLocaleString()} candidates · ` +
    `took ${response.took_ms.toFixed(1)} ms`;
  // Only a re-ranked search orders by a float distance worth showing (ties of a Hamming search use one too).
  const metric = response.mode.startsWith("rerank:") ? response.mode.replace("rerank:", "") : null;
  $("results").replaceChildren(...hits.map((hit, n) => card(hit, "result-item", n + 1, metric)));
  $("prediction").hidden = !classification;
  if (classification) {
    $("predicted-label").textContent = classification.label ?? "no labelled neighbours";
    $("distribution").replaceChildren(...Object.entries(classification.distribution).map(([label, share]) => {
      const row = document.createElement("li");
      row.dataset.testid = "distribution-row";
      const name = document.createElement("span");
      name.textContent = label;
      const bar = document.createElement("span");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.style.width = `${(100 * share).toFixed(1)}%`;
      bar.append(fill);
      const value = document.createElement("span");
      value.className = "share";
      value.textContent = `${(100 * share).toFixed(0)}%`;
      row.append(name, bar, value);
      return row;
    }));
    showClassifier(classification);
  }
  $("results-panel").hidden = false;
  window.scrollTo({ top: 0, behavior: "smooth" });
}

// The model's own classifier beside the vote: its top class and calibrated probability (a class added after
// training is one it cannot name). Its probabilities come as an object; the top one is taken by value.
function showClassifier(classification) {
  const line = $("classifier-line");
  const own = classification.classifier;
  line.hidden = !own || classification.method === "classifier";
  if (line.hidden) return;
  const [label, probability] = Object.entries(own).reduce((a, b) => (b[1] > a[1] ? b : a));
  line.textContent = `The model's own classifier: ${label}, ${(100 * probability).toFixed(0)}% sure ` +
    "(it knows only the classes it was trained on)";
}

function searchById(item) {
  return busy(async () => {
    const response = await api(`${collectionUrl()}/images/${item.id}/similar?${searchParams()}`);
    showResults({ title: `Like ${item.name} (${item.label ?? "unlabelled"})`, imageUrl: item.thumbnail_url, response });
  });
}

function searchRandom() {
  return busy(async () => {
    const response = await api(`${collectionUrl()}/search/random?${searchParams()}`);
    const query = await api(`${collectionUrl()}/images/${response.query.id}`);
    showResults({ title: `Random pick: ${query.name} (${query.label ?? "unlabelled"})`,
                  imageUrl: query.thumbnail_url, response });
  });
}

let uploadUrl = null;   // the object URL showing the last upload, released when replaced
function searchUpload(file) {
  return busy(async () => {
    const form = new FormData();
    form.append("file", file);
    const classification = await api(`${collectionUrl()}/classify?${searchParams("vote-k-input")}`,
                                     { method: "POST", body: form });
    if (uploadUrl) URL.revokeObjectURL(uploadUrl);
    uploadUrl = URL.createObjectURL(file);
    showResults({ title: `Like your image ${file.name} (its ${classification.neighbours.hits.length} voters)`,
                  imageUrl: uploadUrl,
                  response: classification.neighbours, classification });
  });
}

// ------------------------------------------------------------------------------------ wiring
function wireDragAndDrop() {
  let depth = 0;   // dragenter/dragleave fire for every child element crossed
  const zone = $("drop-zone");
  document.addEventListener("dragenter", (event) => { event.preventDefault(); depth += 1; zone.hidden = false; });
  document.addEventListener("dragleave", () => { depth = Math.max(0, depth - 1); zone.hidden = depth === 0; });
  document.addEventListener("dragover", (event) => event.preventDefault());
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    depth = 0;
    zone.hidden = true;
    if (!event.dataTransfer || hooks.drop.some((hook) => hook(event.dataTransfer))) return;
    const file = event.dataTransfer.files[0];
    if (file) searchUpload(file);
  });
}

async function main() {
  $("random-button").addEventListener("click", searchRandom);
  $("upload-button").addEventListener("click", () => $("upload-input").click());
  $("upload-input").addEventListener("change", (event) => {
    const file = event.target.files[0];
    event.target.value = "";   // choosing the same file again still searches
    if (file) searchUpload(file);
  });
  $("help-button").addEventListener("click", () => $("help-dialog").showModal());
  $("close-results").addEventListener("click", () => { $("results-panel").hidden = true; });
  $("settings").addEventListener("submit", (event) => event.preventDefault());
  $("label-filter").addEventListener("change", (event) => {
    state.label = event.target.value;
    busy(() => loadPage(0));
  });
  $("page-prev").addEventListener("click", () => busy(() => loadPage(Math.max(0, state.offset - PAGE_SIZE))));
  $("page-next").addEventListener("click", () => busy(() => loadPage(state.offset + PAGE_SIZE)));
  $("collection-select").addEventListener("change", (event) => busy(() => loadCollection(event.target.value)));
  wireDragAndDrop();

  await busy(async () => {
    await loadDefaults();
    const collections = await api("/api/collections");
    state.collections = collections;
    const select = $("collection-select");
    select.replaceChildren(...collections.map((c) => new Option(`${c.name} (${c.images.toLocaleString()})`, c.name)));
    select.hidden = collections.length < 2;
    for (const hook of hooks.start) await hook();
    await loadCollection(collections[0].name);
  });
  document.body.dataset.ready = "true";   // tests wait for this
}

document.addEventListener("DOMContentLoaded", main);   // after every deferred script: their hooks are in
