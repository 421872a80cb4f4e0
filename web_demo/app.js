// attnrec_tf browser demo: the exported on-device model, run client-side with LiteRT.js.
//
// Loads /run/config.json and the movie list (the Android demo assets of a run), compiles
// /run/<config.model> (input int32[inputLength] history of movie indices, 0 = padding, with
// inputLength read from config.json (the export's history_length, 512 by default); outputs
// item_ids, scores, attention[max_len]) on the WebAssembly CPU backend, and re-runs it whenever
// the picked movies change. The input is built like the Python LiteRT runner: the last
// inputLength picks, left-padded with 0 (the graph packs real ids to the right, so right
// padding, as in the Android app, gives the same result). The model attends over the last
// max_len of them; none of the inputLength picks is recommended.
//
// Then it explains each recommendation on this device too: /explain/config.json names the run's
// explain .tflite (attnrec_tf/export/explain_tflite.py: inputs history int32[1, historyLength]
// and candidates int32[1, topK], outputs removed[1, max_len], score_drops and ranks_without
// [1, max_len, topK]), run with the picks and the recommended ids. Each recommendation shows its
// reasons as attnrec_tf.counterfactual.Counterfactuals.reasons finds them and the recommend
// command prints them: "because you picked X (#rank -> #rank without X)". Without that file
// (404) the page shows the recommendations alone.
import {loadAndCompile, loadLiteRt, Tensor} from '@litertjs/core';

const WASM_DIR = '/vendor/@litertjs/core/wasm/';
const RUN_DIR = '/run/';
const EXPLAIN_DIR = '/explain/';
const SEARCH_LIMIT = 12;
// as attnrec_tf.recommender.REASONS and the defaults of Counterfactuals.reasons
const REASONS = 3;
const MIN_SHARE = 0.1;
const NO_REASON = 'no single history item raises it (removing any one leaves it as high)';

const state = {config: null, movies: [], byId: new Map(), picked: [], model: null,
               inputName: 'history', inputLength: 0, explainer: null, explainConfig: null,
               busy: Promise.resolve()};

const $ = (id) => document.getElementById(id);

function setStatus(text, ready = false, failed = false) {
  const status = $('status');
  status.textContent = text;
  status.dataset.ready = String(ready);
  status.classList.toggle('error', failed);
}

async function fetchJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

// "The Matrix", "matrix, the", "Matrix (1999)" -> tokens ["matrix"] (+ "1999").
function tokens(text) {
  return text.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase()
      .replace(/&/g, ' and ').replace(/'/g, '').split(/[^a-z0-9]+/)
      .filter((t) => t && !['the', 'a', 'an'].includes(t));
}

function search(query) {
  const wanted = tokens(query);
  if (!wanted.length) return state.movies.slice(0, SEARCH_LIMIT);  // most watched first
  const hits = [];
  for (const movie of state.movies) {
    if (wanted.every((w) => movie.tokens.some((t) => t.startsWith(w)))) hits.push(movie);
    if (hits.length >= SEARCH_LIMIT) break;
  }
  return hits;
}

function renderSearch() {
  const list = $('search-results');
  list.replaceChildren();
  const pickedIds = new Set(state.picked);
  for (const movie of search($('search').value)) {
    const item = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'add';
    button.dataset.id = String(movie.id);
    button.dataset.title = movie.title;
    button.textContent = movie.title;
    button.disabled = pickedIds.has(movie.id);
    button.addEventListener('click', () => pick(movie.id));
    const genres = document.createElement('span');
    genres.className = 'genres';
    genres.textContent = movie.genres.join(', ');
    item.append(button, genres);
    list.append(item);
  }
}

function pick(id) {
  if (state.picked.includes(id)) return;
  state.picked.push(id);
  update();
}

function unpick(id) {
  state.picked = state.picked.filter((p) => p !== id);
  update();
}

function update() {
  renderSearch();
  state.busy = state.busy.then(recommend).catch((error) => {
    console.error(error);
    setStatus(`Inference failed: ${error.message}`, true, true);
  });
}

function input_(picked, length = state.inputLength) {
  const input = new Int32Array(length);
  const tail = picked.slice(-length);
  input.set(tail, length - tail.length);
  return input;
}

function readAll(outputs, names) {
  const values = {};
  for (const name of names) values[name] = Array.from(outputs[name].toTypedArray());
  for (const tensor of Object.values(outputs)) if (!tensor.deleted) tensor.delete?.();
  return values;
}

// The explain file on the picks and the recommended ids: each recommendation's reasons, and
// the time of the one LiteRT.js call.
async function explain(picked, itemIds) {
  const {historyLength, topK} = state.explainConfig;
  const candidates = new Int32Array(topK);
  candidates.set(itemIds.slice(0, topK));
  const inputs = {history: new Tensor(input_(picked, historyLength), [1, historyLength]),
                  candidates: new Tensor(candidates, [1, topK])};
  const started = performance.now();
  const outputs = await state.explainer.run(inputs);
  const elapsed = performance.now() - started;
  for (const tensor of Object.values(inputs)) tensor.delete();
  const out = readAll(outputs, ['removed', 'score_drops', 'ranks_without']);
  const reasons = itemIds.map((_, column) => reasonsOf(out, topK, column));
  return {reasons, elapsed};
}

// Counterfactuals.reasons(column, top=REASONS, min_share=MIN_SHARE): the window's distinct
// items, most recent first, ordered by decreasing drop (stable); of the first REASONS, those
// with a positive drop of at least MIN_SHARE of the largest.
function reasonsOf({removed, score_drops: drops, ranks_without: ranks}, width, column) {
  const rows = [];
  const seen = new Set();
  for (let position = removed.length - 1; position >= 0; position--) {
    const item = removed[position];
    if (item <= 0 || seen.has(item)) continue;
    seen.add(item);
    const at = position * width + column;
    rows.push({item, scoreDrop: drops[at], rankWithout: ranks[at], order: rows.length});
  }
  rows.sort((a, b) => b.scoreDrop - a.scoreDrop || a.order - b.order);
  const found = rows.slice(0, REASONS).filter((r) => r.scoreDrop > 0);
  return found.filter((r) => r.scoreDrop >= MIN_SHARE * found[0].scoreDrop)
      .map(({item, scoreDrop, rankWithout}) => ({item, scoreDrop, rankWithout}));
}

// attnrec_tf/recommend.py _because_line, with "picked" for "watched".
function becauseLine(reasons, rank) {
  if (!reasons.length) return NO_REASON;
  const title = (id) => state.byId.get(id)?.title ?? `#${id}`;
  return 'because you picked ' +
      reasons.map((r) => `${title(r.item)} (#${rank} -> #${r.rankWithout})`).join(', ');
}

async function run(ids) {
  const input = new Tensor(ids, [state.inputLength]);
  const started = performance.now();
  const outputs = await state.model.run({[state.inputName]: input});
  const elapsed = performance.now() - started;
  input.delete();
  const read = (name) => {
    const tensor = outputs[name];
    const values = Array.from(tensor.toTypedArray());
    tensor.delete();
    return values;
  };
  const result = {itemIds: read('item_ids'), scores: read('scores'), attention: read('attention'),
                  elapsed};
  for (const tensor of Object.values(outputs)) if (!tensor.deleted) tensor.delete?.();
  return result;
}

async function recommend() {
  const picked = [...state.picked];
  renderPicked(picked, null);
  const recommendations = $('recommendations');
  if (!picked.length) {
    recommendations.replaceChildren();
    recommendations.dataset.for = '';
    $('timing').textContent = '';
    return;
  }
  const result = await run(input_(picked));
  // attention[p] belongs to position p of the model's window: the last attention.length picks,
  // packed to the right (left-padded with 0). Earlier picks are excluded but not attended.
  const length = result.attention.length;
  const seen = picked.slice(-Math.min(length, state.inputLength));
  const weights = new Map();
  seen.forEach((id, j) => {
    weights.set(id, (weights.get(id) || 0) + result.attention[length - seen.length + j]);
  });
  renderPicked(picked, weights);
  const top = state.config.topK;
  const explained = state.explainer ?
      await explain(picked, result.itemIds.slice(0, top)) : null;
  const items = [];
  for (let rank = 0; rank < Math.min(top, result.itemIds.length); rank++) {
    const id = result.itemIds[rank];
    const movie = state.byId.get(id);
    const item = document.createElement('li');
    item.dataset.id = String(id);
    item.dataset.score = String(result.scores[rank]);
    const title = document.createElement('span');
    title.className = 'title';
    title.textContent = movie ? movie.title : `#${id}`;
    const meta = document.createElement('span');
    meta.className = 'meta';
    meta.textContent = `${movie ? movie.genres.join(', ') : ''} · score ${result.scores[rank].toFixed(2)}`;
    item.append(title, meta);
    if (explained) {
      const reasons = explained.reasons[rank];
      const because = document.createElement('span');
      because.className = 'because';
      because.textContent = becauseLine(reasons, rank + 1);
      item.dataset.because = JSON.stringify(reasons);
      item.append(because);
    }
    items.push(item);
  }
  recommendations.replaceChildren(...items);
  recommendations.dataset.for = picked.join(',');
  const timing = $('timing');
  timing.textContent = `(top ${items.length}, ${result.elapsed.toFixed(1)} ms in LiteRT.js` +
      (explained ? `; reasons ${explained.elapsed.toFixed(1)} ms)` : ')');
  timing.dataset.explainMs = explained ? String(explained.elapsed) : '';
}

function renderPicked(picked, weights) {
  const list = $('picked');
  list.replaceChildren();
  const largest = weights ? Math.max(...weights.values(), 1e-9) : 1;
  for (const id of picked) {
    const movie = state.byId.get(id);
    const item = document.createElement('li');
    item.dataset.id = String(id);
    const title = document.createElement('span');
    title.className = 'title';
    title.textContent = movie.title;
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'remove';
    remove.title = `Remove ${movie.title}`;
    remove.textContent = '×';
    remove.addEventListener('click', () => unpick(id));
    const bar = document.createElement('div');
    bar.className = 'bar';
    const fill = document.createElement('div');
    fill.className = 'fill';
    const value = document.createElement('span');
    value.className = 'weight';
    if (weights && weights.has(id)) {
      const weight = weights.get(id);
      item.dataset.attention = String(weight);
      fill.style.width = `${(100 * weight / largest).toFixed(1)}%`;
      value.textContent = weight.toFixed(3);
    } else if (weights) {
      // older than the model's window: never recommended, but not attended either
      bar.hidden = true;
      value.classList.add('outside');
      value.textContent = 'outside the window (not attended; still excluded)';
    } else {
      fill.style.width = '0%';
      value.textContent = '…';
    }
    bar.append(fill);
    item.append(remove, title, bar, value);
    list.append(item);
  }
  list.dataset.count = String(picked.length);
  $('picked-empty').hidden = picked.length > 0;
  $('clear').disabled = picked.length === 0;
}

// The explain file, if the run has one; returns the sentence the status line ends with.
async function loadExplainer() {
  const response = await fetch(`${EXPLAIN_DIR}config.json`);
  if (!response.ok) {
    $('explain-note').hidden = true;
    return 'No explain file in this run (re-export it), so no reasons.';
  }
  state.explainConfig = await response.json();
  setStatus(`Compiling ${state.explainConfig.model}…`);
  state.explainer = await loadAndCompile(`${EXPLAIN_DIR}${state.explainConfig.model}`,
                                         {accelerator: 'wasm'});
  return `Reasons: ${state.explainConfig.model}, on this device too.`;
}

async function main() {
  try {
    const config = await fetchJson(`${RUN_DIR}config.json`);
    const movies = await fetchJson(`${RUN_DIR}${config.movieList}`);
    state.config = config;
    state.movies = movies.map((m) => ({...m, tokens: tokens(m.title)}));
    for (const movie of state.movies) state.byId.set(movie.id, movie);
    setStatus('Loading the LiteRT.js WebAssembly runtime…');
    await loadLiteRt(WASM_DIR);
    setStatus(`Compiling ${config.model}…`);
    state.model = await loadAndCompile(`${RUN_DIR}${config.model}`, {accelerator: 'wasm'});
    const inputs = state.model.getInputDetails();
    const feature = config.inputs[0];
    state.inputName = inputs[feature.index]?.name || inputs[0].name;
    state.inputLength = feature.inputLength;
    const explaining = await loadExplainer();
    setStatus(`Ready: ${config.model} runs in this page (LiteRT.js, WebAssembly); ` +
              `${state.movies.length} movies, history input ${state.inputLength}. ` +
              explaining, true);
    $('search').disabled = false;
    $('search').addEventListener('input', renderSearch);
    $('clear').addEventListener('click', () => { state.picked = []; update(); });
    renderSearch();
    renderPicked([], null);
    $('search').focus();
  } catch (error) {
    console.error(error);
    setStatus(`Could not start the demo: ${error.message}`, false, true);
  }
}

main();
