// The model panel: how the collection's codes are made now (a zero-training hasher's fit, refit by hand),
// training runs on its own labels (loss and validation mAP per epoch while one runs), switching the
// collection to a finished run's model through a reindex, and back to the model it replaced (both in the
// background: searches keep answering meanwhile). Plugs into app.js through its hooks; writes need canWrite().
"use strict";

const POLL_MS = 1000;
const STOPPED = { early: " (stopped early: no better validation mAP)", time: " (stopped at the time limit)" };
const runs = { job: null, timer: null, collection: null };
const restores = { status: null, timer: null };   // the collection's last restore (GET .../model/restore)

function trainingUrl(suffix = "") { return `${collectionUrl()}/training${suffix}`; }

function when(stamp) { return stamp ? stamp.replace("T", " ").replace("+00:00", " UTC") : ""; }

function describeModel(hasher) {
  if (!hasher) return "";
  if (hasher.type === "hash_model") {
    return `trained ${hasher.head}+${hasher.loss} model, ${hasher.bits} bits on ${hasher.backbone}` +
      (hasher.trained_at ? ` (trained ${when(hasher.trained_at)})` : "");
  }
  if (hasher.type === "pretrained+shallow") {
    const fit = hasher.hasher || {};
    return `zero training: pretrained ${hasher.backbone} + ${String(fit.name).toUpperCase()}, ${fit.n_bits} bits` +
      (hasher.fitted ? `, fitted on ${Number(hasher.n_fit).toLocaleString()} images` : "");
  }
  return hasher.type;
}

// A zero-training collection's fit: on how many images, and when the refit policy fits again.
function describeFit(fit) {
  if (!fit || fit.images === null) return "Not fitted yet: the first images added fit the hasher.";
  return `Fitted on ${fit.images.toLocaleString()} images${fit.provisional ? " (provisional)" : ""}` +
    (fit.fitted_at ? ` on ${when(fit.fitted_at)}` : "") +
    (fit.next_refit_at ? `; refits by itself at ${fit.next_refit_at.toLocaleString()} images.` : ".");
}

function showModel(info) {
  $("model-current").textContent = `Codes from: ${describeModel(info.hasher)}`;
  $("model-fit").hidden = !info.fit;
  if (info.fit) $("model-fit-text").textContent = describeFit(info.fit);
  $("model-previous").hidden = !info.previous_hasher;
  $("model-previous-text").textContent = info.previous_hasher ? `Previous model: ${describeModel(info.previous_hasher)}` : "";
}

const figure = (value, digits = 3) => (value === null || value === undefined ? "—" : value.toFixed(digits));

// Loss (scaled to its largest value) and validation mAP (0 to 1) per epoch, as two lines.
function drawChart(history) {
  const svg = $("run-chart");
  const ns = "http://www.w3.org/2000/svg";
  const width = 600, height = 120, pad = 6;
  const x = (n) => pad + (history.length < 2 ? 0 : (n / (history.length - 1)) * (width - 2 * pad));
  const y = (v) => height - pad - v * (height - 2 * pad);
  const largest = Math.max(...history.map((e) => e.loss ?? 0), 1e-9);
  const line = (points, className) => {
    const path = document.createElementNS(ns, "polyline");
    path.setAttribute("points", points.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(" "));
    path.setAttribute("class", className);
    return path;
  };
  const loss = history.map((e, n) => [x(n), y((e.loss ?? 0) / largest)]);
  const maps = history.map((e, n) => [e, n]).filter(([e]) => e.val_map !== null).map(([e, n]) => [x(n), y(e.val_map)]);
  svg.replaceChildren(line(loss, "loss"), line(maps, "map"));
}

function showRun(job) {
  runs.job = job;
  $("run").hidden = !job;
  if (!job) return;
  const info = state.info;
  const settings = Object.entries(job.settings).map(([k, v]) => `${k.replace("_", " ")} ${v}`).join(", ");
  $("run-title").textContent = `Training run ${job.id} · recipe ${job.recipe}${settings ? ` (${settings})` : ""}`;
  const stateText = { running: "running", done: "finished", cancelled: "cancelled",
                      failed: `failed: ${job.error ?? "see the output"}`,
                      interrupted: "interrupted (the server stopped during it)" }[job.state] ?? job.state;
  $("run-state").textContent = stateText;
  $("run-state").className = `state ${job.state}`;
  $("cancel-button").hidden = job.state !== "running";
  const share = job.state === "done" ? 1 : job.epochs ? Math.min(1, job.epoch / job.epochs) : 0;
  $("run-bar").style.width = `${(100 * share).toFixed(1)}%`;
  const warmup = job.stage && job.stage.startsWith("warmup") ? " (head warm-up)" : "";
  $("run-epoch").textContent = job.epoch === 0
    ? (job.state === "running" ? "Preparing: splitting the labelled images, reading their features…" : "No epoch was completed.")
    : `epoch ${job.epoch.toLocaleString()} of ${job.epochs.toLocaleString()}${warmup}${job.epoch < job.epochs ? STOPPED[job.stopped] ?? "" : ""}` +
      ` · loss ${figure(job.loss, 4)}` +
      ` · validation mAP ${figure(job.val_map)}` +
      (job.best_val_map !== null ? ` (best ${figure(job.best_val_map)} at epoch ${job.best_epoch})` : "");
  drawChart(job.history);
  $("run-figures").hidden = !job.test;
  if (job.test) {
    $("run-figures").textContent = `Kept model: validation mAP@all ${figure(job.validation && job.validation.map_all)}` +
      ` · test mAP@all ${figure(job.test.map_all)} · test top-8 vote ${figure(job.test.vote_accuracy_top8)}` +
      ` (${job.test.queries} held-out test queries)` +
      (job.test.searched ? ` · as this collection searches: mAP@all ${figure(job.test.searched.map_all)},` +
        ` top-8 vote ${figure(job.test.searched.vote_accuracy_top8)}` : "");
  }
  const inUse = info && info.hasher.type === "hash_model" && job.trained_at && info.hasher.trained_at === job.trained_at;
  const restorable = info && info.previous_hasher && job.trained_at && info.previous_hasher.trained_at === job.trained_at;
  const applying = job.apply && job.apply.state === "applying";
  $("delete-run-button").hidden = job.state === "running" || applying || inUse || restorable;
  $("run-apply").hidden = job.state !== "done";
  $("apply-button").hidden = inUse || applying;
  $("apply-state").textContent = applying
    ? `Re-encoding the library with this model… ${job.apply.encoded.toLocaleString()} of ${job.apply.total.toLocaleString()}`
    : inUse ? "The collection uses this model."
    : job.apply && job.apply.state === "failed" ? `Switching failed: ${job.apply.error}` : "";
  $("run-log").textContent = job.log_tail.join("\n");
}

function stopPolling() { clearTimeout(runs.timer); runs.timer = null; }

// Follows a run while it trains or is being applied; when a switch ends, the collection is read again.
function poll() {
  stopPolling();
  const job = runs.job;
  if (!job || !(job.state === "running" || (job.apply && job.apply.state === "applying"))) return;
  const collection = state.collection;
  runs.timer = setTimeout(async () => {
    try {
      const next = await api(trainingUrl(`/${job.id}`));
      if (collection !== state.collection) return;
      const switched = job.apply && job.apply.state === "applying" && next.apply && next.apply.state === "applied";
      if (switched) {
        await refresh();
        showNotice("The collection now uses the new model.");
      }
      showRun(next);
      if (next.state === "done" && job.state === "running") showNotice("Training finished.");
    } catch (error) { showError(error); }
    poll();
  }, POLL_MS);
}

async function onCollection(info) {
  showModel(info);
  if (runs.collection === state.collection) { showRun(runs.job); showRestore(restores.status); return; }
  runs.collection = state.collection;
  stopPolling();
  const jobs = await api(trainingUrl());
  showRun(jobs[0] ?? null);
  poll();
  followRestore();
}

// A restore under way, started elsewhere; not awaited (the gallery's images may hold the connections for a
// while), and dropped when a restore was asked for here meanwhile.
function followRestore() {
  const collection = state.collection;
  showRestore(null);
  api(`${collectionUrl()}/model/restore`).then((status) => {
    if (collection !== state.collection || restores.status !== null) return;
    showRestore(status);
    pollRestore();
  }).catch(showError);
}

function startRun(event) {
  event.preventDefault();
  const body = { recipe: $("recipe-select").value };
  if ($("epochs-input").value !== "") body.epochs = Number($("epochs-input").value);
  if ($("minutes-input").value !== "") body.max_minutes = Number($("minutes-input").value);
  busy(async () => {
    showRun(await api(trainingUrl(), { method: "POST", headers: { "Content-Type": "application/json" },
                                       body: JSON.stringify(body) }));
    poll();
  }, "Starting the training…");
}

function cancelRun() {
  busy(async () => { showRun(await api(trainingUrl(`/${runs.job.id}/cancel`), { method: "POST" })); });
}

function applyRun() {
  if (!window.confirm("Switch the collection to this model? Every library image is encoded again; searches keep " +
                      "using the current model until the switch, and changes to the library wait for it. " +
                      "“Restore previous model” switches back.")) return;
  busy(async () => {
    showRun(await api(trainingUrl(`/${runs.job.id}/apply`), { method: "POST" }));
    poll();
  }, "Switching the model…");
}

// Deletes the run shown, then shows the newest one left.
function deleteRun() {
  const id = runs.job.id;
  if (!window.confirm(`Delete training run ${id}? Its model, figures and log are deleted.`)) return;
  busy(async () => {
    stopPolling();
    await api(trainingUrl(`/${id}`), { method: "DELETE" });
    const jobs = await api(trainingUrl());
    showRun(jobs[0] ?? null);
    poll();
    showNotice(`Deleted training run ${id}.`);
  }, "Deleting the run…");
}

const restoringNow = (status) => Boolean(status && status.state === "restoring");

function showRestore(status) {
  restores.status = status;
  $("restore-button").hidden = restoringNow(status);
  $("restore-state").textContent = restoringNow(status)
    ? `Switching back… ${status.encoded.toLocaleString()} of ${status.total.toLocaleString()} images coded ` +
      "(searches use the current model until the switch)"
    : status && status.state === "failed" ? `Restoring failed: ${status.error}` : "";
}

// Follows a restore under way; when it ends, the collection is read again.
function pollRestore() {
  clearTimeout(restores.timer);
  if (!restoringNow(restores.status)) return;
  const collection = state.collection;
  restores.timer = setTimeout(async () => {
    try {
      const next = await api(`${collectionUrl()}/model/restore`);
      if (collection !== state.collection) return;
      showRestore(next);
      if (next && next.state === "restored") {
        await refresh();
        showNotice(`Restored: ${describeModel(state.info.hasher)}.`);
      }
    } catch (error) { showError(error); }
    pollRestore();
  }, POLL_MS);
}

function restoreModel() {
  if (!window.confirm("Switch the collection back to its previous model? Images added since the last switch " +
                      "are encoded with it; searches keep using the current model until the switch, and changes " +
                      "to the library wait for it.")) return;
  busy(async () => {
    showRestore(await api(`${collectionUrl()}/model/restore`, { method: "POST" }));
    pollRestore();
  }, "Restoring the previous model…");
}

function refitHasher() {
  busy(async () => {
    const response = await api(`${collectionUrl()}/refit`, { method: "POST" });
    await refresh();
    showNotice(`Refitted on ${response.images.toLocaleString()} images in ${response.seconds.toFixed(1)} s.`);
  }, "Refitting…");
}

$("train-form").addEventListener("submit", startRun);
$("refit-button").addEventListener("click", refitHasher);
$("cancel-button").addEventListener("click", cancelRun);
$("apply-button").addEventListener("click", applyRun);
$("delete-run-button").addEventListener("click", deleteRun);
$("restore-button").addEventListener("click", restoreModel);
hooks.collection.push(onCollection);
