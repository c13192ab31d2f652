// The duplicate groups view: exact and near-duplicate images of the collection side by side, the suggested
// keeper first, and (with the right to write) "keep this, remove the others" for each picture.
// Plugs into app.js through its hooks and fills the section #duplicates-panel; writes need canWrite().
"use strict";

const dup = { collection: null, response: null };

const DUP_STYLE = `
.dup-settings { display: flex; flex-wrap: wrap; gap: 0.8rem; align-items: center; }
.dup-settings input { width: 6.5rem; }
.dup-group { border-top: 1px solid var(--line); padding: 0.8rem 0; }
.dup-group h3 { margin: 0 0 0.5rem; font-size: 0.95rem; }
.dup-group .grid { grid-template-columns: repeat(auto-fill, minmax(168px, 200px)); }
.dup-group .keeper-tag { color: var(--accent); font-weight: 600; font-size: 0.8rem; }
.dup-group .size { color: var(--muted); font-size: 0.78rem; }
.dup-group .card .keep-button { aspect-ratio: auto; padding: 0.3rem 0.5rem; border: 1px solid var(--line);
  border-radius: 6px; background: var(--panel); font-size: 0.8rem; cursor: pointer; }
.dup-group .card[data-keeper="true"] > button:first-child { outline: 3px solid var(--accent); outline-offset: 2px; }`;

function dupPanel() {
  const panel = $("duplicates-panel");
  if (panel.dataset.built) return panel;
  const style = document.createElement("style");
  style.textContent = DUP_STYLE;
  document.head.append(style);
  panel.innerHTML = `
    <div class="panel-head"><h2>Duplicates</h2>
      <span class="muted" data-testid="duplicates-summary" id="duplicates-summary"></span></div>
    <form class="dup-settings" id="duplicates-form" data-testid="duplicates-form">
      <label>max Hamming <input id="dup-hamming" data-testid="dup-hamming" type="number" min="0" max="1024"
        placeholder="default"></label>
      <label>max cosine distance <input id="dup-distance" data-testid="dup-distance" type="number" min="0"
        max="2" step="0.005" placeholder="default"></label>
      <button type="submit" class="primary" data-testid="find-duplicates">Find duplicates</button>
      <span class="muted hint">Exact copies and resized, re-compressed, cropped, brightened or rotated ones;
        the suggested keeper is the largest picture, then the oldest.</span>
    </form>
    <div id="duplicate-groups" data-testid="duplicate-groups"></div>`;
  panel.dataset.built = "true";
  $("duplicates-form").addEventListener("submit", (event) => {
    event.preventDefault();
    busy(findDuplicates, "Looking for duplicates…");
  });
  return panel;
}

async function findDuplicates() {
  const params = new URLSearchParams();
  if ($("dup-hamming").value !== "") params.set("max_hamming", $("dup-hamming").value);
  if ($("dup-distance").value !== "") params.set("max_distance", $("dup-distance").value);
  dup.response = await api(`${collectionUrl()}/duplicates?${params}`);
  showGroups();
}

function showGroups() {
  const response = dup.response;
  $("duplicates-summary").textContent =
    `${response.groups.length.toLocaleString()} groups · ${response.duplicates.toLocaleString()} duplicates among ` +
    `${response.images.toLocaleString()} images (Hamming ≤ ${response.max_hamming}, cosine ≤ ${response.max_distance}, ` +
    `pixel similarity ≥ ${response.min_similarity})`;
  const groups = response.groups.map((group, n) => {
    const box = document.createElement("div");
    box.className = "dup-group";
    box.dataset.testid = "duplicate-group";
    const title = document.createElement("h3");
    title.textContent = `Group ${n + 1} · ${group.kind === "exact" ? "same bytes" : "near-duplicates"} · ` +
      `${group.members.length} images`;
    const grid = document.createElement("div");
    grid.className = "grid";
    grid.append(...group.members.map((member) => memberCard(group, member)));
    box.append(title, grid);
    return box;
  });
  if (!groups.length) {
    const none = document.createElement("p");
    none.className = "muted";
    none.dataset.testid = "no-duplicates";
    none.textContent = "No duplicates with these settings.";
    groups.push(none);
  }
  $("duplicate-groups").replaceChildren(...groups);
}

function memberCard(group, member) {
  const figure = card(member, "duplicate-member", undefined, member.keeper ? null : "cosine");
  figure.dataset.keeper = String(member.keeper);
  const caption = figure.querySelector("figcaption");
  const size = document.createElement("span");
  size.className = "size";
  size.textContent = (member.width ? `${member.width}×${member.height} px · ` : "") + member.name;
  caption.append(size);
  if (member.keeper) {
    const tag = document.createElement("span");
    tag.className = "keeper-tag";
    tag.dataset.testid = "keeper-tag";
    tag.textContent = "suggested keeper";
    caption.append(tag);
  } else if (member.same_bytes) {
    caption.querySelector(".distances").textContent = "same bytes";
  }
  const keep = document.createElement("button");
  keep.type = "button";
  keep.className = "keep-button write-only";
  keep.dataset.testid = "keep-button";
  keep.textContent = "Keep this, remove the others";
  keep.addEventListener("click", () => resolveGroup(group, member));
  caption.append(keep);
  return figure;
}

function resolveGroup(group, member) {
  if (!canWrite()) return;
  const others = group.members.filter((m) => m.id !== member.id).map((m) => m.id);
  if (!window.confirm(`Keep ${member.name} and remove the other ${others.length} image(s) of this group from ` +
                      "the library? (Adding the same files again brings them back.)")) return;
  busy(async () => {
    const response = await api(`${collectionUrl()}/duplicates/resolve`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ keep: member.id, remove: others }) });
    showNotice(`Kept ${member.name}, removed ${response.removed}; ${response.images.toLocaleString()} images left.`);
    await refresh();            // the gallery and counts; onDuplicatesCollection finds the groups again
  }, "Removing…");
}

async function onDuplicatesCollection() {
  dupPanel();
  if (dup.collection !== state.collection) {   // another collection: its groups are not known yet
    dup.collection = state.collection;
    dup.response = null;
    $("duplicates-summary").textContent = "";
    $("duplicate-groups").replaceChildren();
  } else if (dup.response) {                    // the same one changed (a removal, an add): look again
    await findDuplicates();
  }
}

hooks.collection.push(onDuplicatesCollection);
