// Managing the library from the page: the API key, adding images (several files, a folder, a drop),
// selecting pictures, relabelling and removing them. Plugs into app.js through its hooks; without the
// right to write (no key typed in, or a server that takes no writes) the page stays read-only and says so.
"use strict";

const KEY_STORAGE = "hashseek-api-key";          // sessionStorage: forgotten with the tab
const BATCH_FILES = 16;                           // images per upload request
const BATCH_BYTES = 8 * 1024 * 1024;              // well under the server's upload limit (20 MB by default)
const IMAGE_FILE = /\.(jpe?g|png|gif|webp|bmp|tiff?)$/i;
const selected = new Map();                       // id -> item, kept while paging
let selectedIn = null;                            // the collection the selection belongs to

function canWrite() {
  const summary = state.summary;
  return Boolean(summary && summary.writable && (!summary.needs_api_key || state.apiKey));
}

// The write controls (class write-only) show only when writes are allowed; the note says why not.
function showWriteMode() {
  const summary = state.summary;
  const writable = canWrite();
  document.body.classList.toggle("can-write", writable);
  $("key-form").hidden = !summary || !summary.needs_api_key || Boolean(state.apiKey);
  $("lock-button").hidden = !state.apiKey;
  const note = $("readonly-note");
  note.hidden = writable;
  note.textContent = !summary || summary.writable
    ? "Read-only: type the API key (top right) to add, remove or relabel images and to train a model."
    : "Read-only: this server takes no changes to this collection (it is served read-only, or on a network " +
      "address without an API key).";
  $("drop-zone").textContent = writable ? "Drop an image to search with it, or several images or a folder to add them"
                                        : "Drop an image to search with it";
  showSelection();
}

async function unlock(key) {
  try {
    await api("/api/write-access", { method: "POST", headers: { "X-API-Key": key } });
  } catch (error) {
    if (error.status === 401) throw new Error("That API key is not the server's: the page stays read-only.");
    throw error;
  }
  state.apiKey = key;
  sessionStorage.setItem(KEY_STORAGE, key);
}

function lock() {
  state.apiKey = null;
  sessionStorage.removeItem(KEY_STORAGE);
  selected.clear();
  return busy(() => refresh());
}

// ------------------------------------------------------------------------------------ selection
function showSelection() {
  const count = selected.size;
  $("selection-count").textContent = `${count.toLocaleString()} selected`;
  for (const id of ["select-none", "relabel-button", "remove-button"]) $(id).disabled = count === 0;
}

function choose(figure, item, on) {
  if (on) selected.set(item.id, item); else selected.delete(item.id);
  figure.classList.toggle("selected", on);
  figure.querySelector(".pick").checked = on;
  showSelection();
}

// Gallery cards get a tick box, a remove button and an editable label when writes are allowed.
function decorateCard(figure, item) {
  if (!canWrite()) return;
  const pick = document.createElement("input");
  pick.type = "checkbox";
  pick.className = "pick";
  pick.dataset.testid = "pick";
  pick.setAttribute("aria-label", `select ${item.name}`);
  pick.addEventListener("change", () => choose(figure, item, pick.checked));
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "remove-one";
  remove.dataset.testid = "remove-one";
  remove.title = `remove ${item.name} from the library`;
  remove.textContent = "×";
  remove.addEventListener("click", () => removeImages([item.id], item.name));
  const label = figure.querySelector(".label");
  const edit = document.createElement("button");
  edit.type = "button";
  edit.className = `${label.className} edit`;
  edit.dataset.testid = "edit-label";
  edit.textContent = label.textContent;
  edit.title = "click to change the label";
  edit.addEventListener("click", () => {
    const value = window.prompt(`Label of ${item.name} (empty: none)`, item.label ?? "");
    if (value !== null) relabelImages([item.id], value);
  });
  label.replaceWith(edit);
  figure.prepend(pick, remove);
  if (selected.has(item.id)) choose(figure, item, true);
}

// ------------------------------------------------------------------------------------ edits
function relabelImages(ids, label) {
  return busy(async () => {
    const response = await api(`${collectionUrl()}/images/relabel`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ ids, label }) });
    const what = label.trim() ? `labelled “${label.trim()}”` : "unlabelled";
    await refresh();   // the notice comes with the updated gallery
    showNotice(`${response.relabelled.toLocaleString()} image${response.relabelled === 1 ? "" : "s"} ${what}.`);
  }, "Relabelling…");
}

function removeImages(ids, name) {
  const what = ids.length === 1 ? (name ? `“${name}”` : "this image") : `these ${ids.length.toLocaleString()} images`;
  if (!window.confirm(`Remove ${what} from the library? (Adding the same file again brings it back.)`)) return;
  return busy(async () => {
    const response = await api(`${collectionUrl()}/images/remove`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ ids }) });
    for (const id of ids) selected.delete(id);
    await refresh();
    showNotice(`Removed ${response.removed.toLocaleString()} image${response.removed === 1 ? "" : "s"}; ` +
               `${response.images.toLocaleString()} left.`);
  }, "Removing…");
}

// ------------------------------------------------------------------------------------ adding
// The label of an image by its path inside what was chosen or dropped: the folder holding it names it
// (when "labels from sub-folders" is ticked); loose files take the label typed in.
function labelFor(path) {
  const parts = path.replace(/^\/+/, "").split("/");
  if (parts.length > 1 && $("folder-labels").checked) return parts[parts.length - 2];
  return $("add-label").value.trim();
}

function* batches(entries) {
  let batch = [], bytes = 0;
  for (const entry of entries) {
    if (batch.length && (batch.length === BATCH_FILES || bytes + entry.file.size > BATCH_BYTES)) {
      yield batch;
      batch = [];
      bytes = 0;
    }
    batch.push(entry);
    bytes += entry.file.size;
  }
  if (batch.length) yield batch;
}

async function upload(batch, totals) {
  const form = new FormData();
  for (const { file, label } of batch) {
    form.append("files", file, file.name);
    form.append("labels", label);
  }
  try {
    const response = await api(`${collectionUrl()}/images`, { method: "POST", body: form });
    totals.added += response.ids.length - response.restored;
    totals.restored += response.restored;
    totals.skipped += response.skipped;
    totals.failed.push(...response.failed);
  } catch (error) {
    if (![413, 422].includes(error.status)) throw error;
    if (batch.length === 1) { totals.failed.push(`${batch[0].file.name}: ${error.message}`); return; }
    for (const entry of batch) await upload([entry], totals);   // a batch is all or nothing: find the bad file
  }
}

// Adds [{file, label}] in batches; files that are not images (by name or type) and hidden files are left out.
function addImages(entries) {
  const images = entries.filter(({ file }) => !file.name.startsWith(".") &&
                                              (IMAGE_FILE.test(file.name) || file.type.startsWith("image/")));
  if (!images.length) { showError(new Error("No image files to add.")); return; }
  return busy(async (say) => {
    const totals = { added: 0, restored: 0, skipped: 0, failed: [] };
    let sent = 0;
    for (const batch of batches(images)) {
      say(`Adding images… ${sent.toLocaleString()} of ${images.length.toLocaleString()}`);
      await upload(batch, totals);
      sent += batch.length;
    }
    const parts = [`Added ${totals.added.toLocaleString()} image${totals.added === 1 ? "" : "s"}`];
    if (totals.restored) parts.push(`${totals.restored} brought back`);
    if (totals.skipped) parts.push(`${totals.skipped} already in the library`);
    await refresh(Infinity);   // new images come last
    showNotice(parts.join(" · ") + ".");
    if (totals.failed.length) {
      showError(new Error(`${totals.failed.length} could not be added: ${totals.failed.slice(0, 5).join("; ")}`));
    }
  }, "Adding images…");
}

// A directory entry's files, sub-folders included, each with its path.
async function filesOf(entry) {
  if (entry.isFile) return [await new Promise((resolve, reject) => entry.file((file) => resolve({ file, path: entry.fullPath }), reject))];
  const reader = entry.createReader();
  const found = [];
  for (;;) {
    const chunk = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));   // up to 100 a call
    if (!chunk.length) return found;
    for (const child of chunk) found.push(...await filesOf(child));
  }
}

// A drop of a folder or of several files adds them (when writes are allowed); one file searches as before.
function takeDrop(dataTransfer) {
  if (!canWrite()) return false;
  // the entries must be taken during the event: the drop's data is gone after it
  const entries = [...(dataTransfer.items || [])].filter((item) => item.kind === "file")
    .map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry()).filter(Boolean);
  if (entries.some((entry) => entry.isDirectory)) {
    Promise.all(entries.map(filesOf))
      .then((lists) => addImages(lists.flat().map(({ file, path }) => ({ file, label: labelFor(path) }))))
      .catch(showError);
    return true;
  }
  const files = [...dataTransfer.files];
  if (files.length < 2) return false;
  addImages(files.map((file) => ({ file, label: $("add-label").value.trim() })));
  return true;
}

// ------------------------------------------------------------------------------------ wiring
function onCollection(info) {
  if (selectedIn !== state.collection) { selected.clear(); selectedIn = state.collection; }
  $("label-list").replaceChildren(...Object.keys(info.classes).map((label) => new Option(label)));
  showWriteMode();
}

function wireManage() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key-input").value;
    if (!key) return;
    busy(async () => {
      await unlock(key);
      $("key-input").value = "";
      await refresh();
      showNotice("Unlocked: you can add, remove and relabel images and train a model.");
    });
  });
  $("lock-button").addEventListener("click", lock);
  $("add-files-button").addEventListener("click", () => $("add-files-input").click());
  $("add-folder-button").addEventListener("click", () => $("add-folder-input").click());
  $("add-files-input").addEventListener("change", (event) => {
    const label = $("add-label").value.trim();
    const files = [...event.target.files];
    event.target.value = "";
    addImages(files.map((file) => ({ file, label })));
  });
  $("add-folder-input").addEventListener("change", (event) => {
    const files = [...event.target.files];
    event.target.value = "";
    addImages(files.map((file) => ({ file, label: labelFor(file.webkitRelativePath || file.name) })));
  });
  $("select-page").addEventListener("click", () => {
    for (const figure of $("gallery").querySelectorAll(".card")) {
      const item = { id: Number(figure.dataset.id), name: figure.querySelector("img").alt, label: figure.dataset.label };
      choose(figure, item, true);
    }
  });
  $("select-none").addEventListener("click", () => {
    selected.clear();
    for (const figure of $("gallery").querySelectorAll(".card.selected")) {
      figure.classList.remove("selected");
      figure.querySelector(".pick").checked = false;
    }
    showSelection();
  });
  $("relabel-button").addEventListener("click", () => relabelImages([...selected.keys()], $("relabel-input").value));
  $("remove-button").addEventListener("click", () => removeImages([...selected.keys()]));
}

// A key typed earlier in this tab is checked again before the page trusts it.
async function restoreKey() {
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (!key) return;
  try { await unlock(key); } catch { sessionStorage.removeItem(KEY_STORAGE); }
}

wireManage();
hooks.card.push(decorateCard);
hooks.drop.push(takeDrop);
hooks.collection.push(onCollection);
hooks.start.push(restoreKey);
