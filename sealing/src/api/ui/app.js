/* kiln web view: a single-page front end over the daemon's /v0 JSON API.
 *
 * Layout of this file:
 *   1. constants (states, stages, colours)
 *   2. small helpers (escaping, formatting)
 *   3. API helper and incremental caches (tasks, chain messages)
 *   4. chart helpers (SVG built as markup strings)
 *   5. pages: mount (static skeleton, once per route) + load + render (every poll)
 *   6. confirmation dialog and sector actions
 *   7. router, polling loop, sign-out
 *
 * Comments use block syntax only: the files must not contain a double slash.
 */
(function () {
  'use strict';

  /* ---------------------------------------------------------------- 1. constants */

  const POLL_MS = 2000;
  const PAGE_LIMIT = 10000; /* the API's largest page */
  const KEEP_MESSAGES = 100; /* the chain page shows the newest this many */
  const MAX_TASK_ROWS = 500; /* a table of tens of thousands of rows every 2 s would crawl */
  const MAX_SCATTER_POINTS = 3000;
  const HOUR_MS = 3600 * 1000;

  /* Lifecycle order: used for the filter, the counts and the chart stacking. */
  const STATES = [
    'Packing', 'Unsealed', 'Labeled', 'PreCommitting', 'PreCommitted', 'Committing', 'CommitWait',
    'FinalizeSector', 'Proving', 'SealPreCommitFailed', 'PreCommitFailed',
    'ComputeProofFailed', 'CommitFailed', 'FinalizeFailed', 'Failed', 'Removing', 'Removed',
  ];
  const FAILED_STATES = new Set([
    'SealPreCommitFailed', 'PreCommitFailed', 'ComputeProofFailed', 'CommitFailed',
    'FinalizeFailed', 'Failed',
  ]);
  const REMOVED_STATES = new Set(['Removing', 'Removed']);
  /* The working state whose step a failure state stands for. */
  const STEP_OF_FAILURE = {
    SealPreCommitFailed: 'Unsealed',
    PreCommitFailed: 'PreCommitting',
    ComputeProofFailed: 'Committing',
    CommitFailed: 'CommitWait',
    FinalizeFailed: 'FinalizeSector',
  };

  const STAGES = [
    { key: 'pieces', label: 'pieces' },
    { key: 'pc1', label: 'PC1' },
    { key: 'pc2', label: 'PC2' },
    { key: 'precommit', label: 'PreCommit' },
    { key: 'seed', label: 'wait seed' },
    { key: 'c1c2', label: 'C1/C2' },
    { key: 'provecommit', label: 'ProveCommit' },
    { key: 'finalize', label: 'finalize' },
    { key: 'proving', label: 'proving' },
  ];
  /* Stage indexes (into STAGES) that the step of a working state occupies. */
  const STEP_STAGES = {
    Packing: [0],
    Unsealed: [1],
    Labeled: [2],
    PreCommitting: [3],
    PreCommitted: [4],
    Committing: [5],
    CommitWait: [6],
    FinalizeSector: [7],
    Proving: [8],
  };

  const STATE_COLOURS = {
    Packing: '#94a9c9', Unsealed: '#3b82f6', Labeled: '#4f46e5', PreCommitting: '#6366f1', PreCommitted: '#a78bfa',
    Committing: '#0ea5e9', CommitWait: '#14b8a6', FinalizeSector: '#84cc16', Proving: '#16a34a',
    SealPreCommitFailed: '#fca5a5', PreCommitFailed: '#f87171', ComputeProofFailed: '#ef4444',
    CommitFailed: '#dc2626', FinalizeFailed: '#fb923c', Failed: '#991b1b',
    Removing: '#cbd5e1', Removed: '#9ca3af',
  };
  /* Task kinds come from the daemon (GET /v0/status task_kinds), coloured by their order there. */
  const KIND_PALETTE = ['#2563eb', '#7c3aed', '#d97706', '#16a34a', '#db2777', '#0891b2', '#65a30d', '#9333ea'];
  const kindColour = (k) => { const i = S.taskKinds.indexOf(k); return i < 0 ? '#666' : KIND_PALETTE[i % KIND_PALETTE.length]; };
  const TASK_STATES = ['running', 'reported', 'done', 'failed', 'rejected', 'expired', 'cancelling', 'cancelled', 'interrupted'];
  const OPEN_TASK_STATES = new Set(['running', 'reported', 'cancelling']);
  const BAD_TASK_STATES = new Set(['failed', 'rejected', 'expired']);

  /* ---------------------------------------------------------------- 2. helpers */

  /* Everything from the API goes through this before it reaches innerHTML. */
  function esc(v) {
    return String(v === null || v === undefined ? '' : v).replace(/[&<>"']/g, (c) => ({
      '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
    }[c]));
  }

  const $ = (id) => document.getElementById(id);
  const pad = (n, w = 2) => String(n).padStart(w, '0');

  /* Replaces an element's markup only when it changed: keeps text selection,
   * hover and scroll position across polls that brought nothing new. */
  function setHTML(el, html) {
    if (!el) return;
    if (el.__html !== html) {
      el.innerHTML = html;
      el.__html = html;
    }
  }

  function clock(d, seconds = true) {
    return `${pad(d.getHours())}:${pad(d.getMinutes())}${seconds ? ':' + pad(d.getSeconds()) : ''}`;
  }

  /* Local HH:MM:SS, with the date in front when it is not today. */
  function fmtTime(ms) {
    if (ms === null || ms === undefined) return '\u2014';
    const d = new Date(ms);
    const t = clock(d);
    if (d.toDateString() === new Date().toDateString()) return t;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${t}`;
  }

  /* Human durations: 350 ms, 1.2 s, 3 m 05 s, 1 h 02 m, 2 d 03 h. */
  function fmtDur(ms) {
    if (ms === null || ms === undefined || !isFinite(ms)) return '\u2014';
    if (ms < 0) ms = 0;
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 59950) return `${(ms / 1000).toFixed(1)} s`;
    const s = Math.round(ms / 1000);
    if (s < 3600) return `${Math.floor(s / 60)} m ${pad(s % 60)} s`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${pad(Math.floor((s % 3600) / 60))} m`;
    return `${Math.floor(s / 86400)} d ${pad(Math.floor((s % 86400) / 3600))} h`;
  }

  function fmtAgo(ms) {
    const d = Date.now() - ms;
    if (d < 60000) return `${Math.max(0, Math.round(d / 1000))} s ago`;
    return `${fmtDur(d)} ago`;
  }

  function fmtBytes(n) {
    if (n === null || n === undefined) return '\u2014';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return `${n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
  }

  /* Commitments and randomness are hex strings in JSON; accept byte arrays too. */
  function hex(v) {
    if (v === null || v === undefined) return null;
    if (Array.isArray(v)) return v.map((b) => (b & 255).toString(16).padStart(2, '0')).join('');
    return String(v);
  }

  function shortHex(v, n = 10) {
    const h = hex(v);
    if (!h) return '\u2014';
    return h.length > n + 2 ? `${h.slice(0, n)}\u2026` : h;
  }

  function sectorLink(n) {
    return `<a href="#/sector/${esc(n)}">${esc(n)}</a>`;
  }

  /* A red truncated text with its whole in the tooltip. */
  function errText(msg, cls = 'error') {
    if (!msg) return '';
    return `<span class="${cls}" title="${esc(msg)}">${esc(msg)}</span>`;
  }

  function stateCategory(state) {
    if (state === 'Proving') return 'done';
    if (FAILED_STATES.has(state)) return 'failed';
    if (REMOVED_STATES.has(state)) return 'removed';
    return 'running';
  }

  function taskStateCategory(state) {
    if (OPEN_TASK_STATES.has(state)) return 'running';
    if (state === 'done') return 'done';
    if (BAD_TASK_STATES.has(state)) return 'failed';
    return 'pending';
  }

  const isOpenTask = (t) => OPEN_TASK_STATES.has(t.state);
  const executor = (t) => (t.worker ? esc(t.worker) : '<span class="muted">local</span>');

  function taskTook(t) {
    if (isOpenTask(t)) return `<span class="muted">running for</span> ${fmtDur(Date.now() - t.created_ms)}`;
    return fmtDur(t.updated_ms - t.created_ms);
  }

  function layersOf(size) {
    /* SDR layers by sector size (proofs/src/shape.rs): 11 for 32/64 GiB, else 2. */
    return size === '32GiB' || size === '64GiB' ? 11 : 2;
  }

  /* ---------------------------------------------------------------- 3. API */

  class AuthError extends Error {}
  class ApiError extends Error {
    constructor(status, message, kind) {
      super(message);
      this.status = status;
      this.kind = kind;
    }
  }

  const S_KEY = { value: '' };

  const S = {
    /* Signed in: the daemon served this page, so the session cookie is set. */
    signedIn: true,
    route: { page: 'pipeline', arg: null },
    routeSeq: 0,
    data: {}, /* last data rendered, by page: filters re-render from it at once */
    pipelineFilter: 'all',
    taskKindFilter: 'all',
    taskOutcomeFilter: 'all',
    taskKinds: [], /* every task kind, in the daemon's order (from /status) */
    tasks: new Map(), /* id -> TaskView, filled incrementally */
    tasksLoaded: false,
    messages: new Map(), /* seq -> ChainMessage, the newest KEEP_MESSAGES */
    msgMaxId: 0,
    msgLoaded: false,
    actionBusy: false,
  };

  /* The session's page key: handed over in the sign-in redirect's fragment
     (#key=...), which no server sees, and kept in this origin's own storage. */
  const KEY_ITEM = 'kiln-ui-key';
  (function takePageKey() {
    const m = /^#key=([0-9a-f]{64})$/.exec(location.hash);
    if (m) {
      try { localStorage.setItem(KEY_ITEM, m[1]); } catch (e) { /* kept for this page only */ }
      S_KEY.value = m[1];
      history.replaceState(null, '', '/ui');
    }
  })();

  function pageKey() {
    if (S_KEY.value) return S_KEY.value;
    try { return localStorage.getItem(KEY_ITEM) || ''; } catch (e) { return ''; }
  }

  async function api(path, opts = {}) {
    /* The session cookie and the page key together open the API: the cookie
       alone, which any service on this host may receive, opens nothing. */
    const headers = { 'X-Kiln-UI': pageKey() };
    const init = { method: opts.method || 'GET', headers, cache: 'no-store', credentials: 'same-origin' };
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(opts.body);
    }
    let res;
    try {
      res = await fetch(`/v0${path}`, init);
    } catch (e) {
      throw new ApiError(0, `cannot reach the daemon (${e.message})`);
    }
    const text = await res.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
    const message = (body && typeof body.message === 'string') ? body.message : (text || res.statusText);
    if (res.status === 401 || res.status === 403) throw new AuthError(message);
    if (!res.ok) throw new ApiError(res.status, message, body && body.kind);
    return body;
  }

  /* Tasks are fetched incrementally: after the first full load, each poll asks
   * only from just below the oldest still-open task (so its state change is
   * seen) or, when none is open, from the newest id. */
  async function syncTasks() {
    let after = 0;
    if (S.tasksLoaded) {
      let max = 0;
      let minOpen = Infinity;
      for (const t of S.tasks.values()) {
        if (t.id > max) max = t.id;
        if (isOpenTask(t) && t.id < minOpen) minOpen = t.id;
      }
      after = minOpen === Infinity ? max : minOpen - 1;
    }
    for (;;) {
      const page = await api(`/tasks?after=${after}&limit=${PAGE_LIMIT}`);
      for (const t of page) S.tasks.set(t.id, t);
      if (page.length < PAGE_LIMIT) break;
      after = page[page.length - 1].id;
    }
    S.tasksLoaded = true;
    return S.tasks;
  }

  /* Chain messages: page through once keeping the tail, then fetch only new
   * ones, starting below the oldest kept message still without a receipt.
   * Kept by `seq`, the node's order of sending (ids are the chain's, opaque). */
  async function syncMessages() {
    let after = 0;
    if (S.msgLoaded) {
      let minPending = Infinity;
      for (const [seq, m] of S.messages) if (!m.receipt && seq < minPending) minPending = seq;
      after = minPending === Infinity ? S.msgMaxId : minPending - 1;
    }
    for (;;) {
      const page = await api(`/chain/messages?after=${after}&limit=${PAGE_LIMIT}`);
      for (const m of page) {
        S.messages.set(m.seq, m);
        if (m.seq > S.msgMaxId) S.msgMaxId = m.seq;
      }
      trimMessages();
      if (page.length < PAGE_LIMIT) break;
      after = page[page.length - 1].seq;
    }
    S.msgLoaded = true;
    return S.messages;
  }

  function trimMessages() {
    if (S.messages.size <= KEEP_MESSAGES) return;
    const seqs = [...S.messages.keys()].sort((a, b) => a - b);
    for (const seq of seqs.slice(0, seqs.length - KEEP_MESSAGES)) S.messages.delete(seq);
  }

  /* One message by its chain id (for a sector's receipts), or null. */
  async function messageById(id) {
    if (id === null || id === undefined) return null;
    for (const m of S.messages.values()) if (m.id === String(id)) return m;
    try {
      return await api(`/chain/messages/${encodeURIComponent(id)}`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return null;
      throw e;
    }
  }

  /* Auth errors must reach the loop (to show the login); others become a note. */
  function soft(promise) {
    return promise.catch((e) => {
      if (e instanceof AuthError) throw e;
      return { __error: e.message };
    });
  }

  /* ---------------------------------------------------------------- 4. charts */

  function niceStep(max, count) {
    const raw = max / Math.max(1, count);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const n = raw / mag;
    return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * mag;
  }

  function valueTicks(max, count, integer) {
    if (!(max > 0)) max = 1;
    let step = niceStep(max, count);
    if (integer) step = Math.max(1, Math.round(step));
    const top = Math.ceil(max / step - 1e-9) * step;
    const ticks = [];
    for (let v = 0; v <= top + step / 1000; v += step) ticks.push(v);
    return { top, ticks };
  }

  const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200,
    10800, 21600, 43200, 86400, 172800, 604800].map((s) => s * 1000);

  function timeTicks(t0, t1, count) {
    const span = Math.max(1, t1 - t0);
    const step = TIME_STEPS.find((s) => span / s <= count) || TIME_STEPS[TIME_STEPS.length - 1];
    /* Align to local time so labels read 12:00, 12:05, ... */
    const offset = new Date(t0).getTimezoneOffset() * 60000;
    const ticks = [];
    for (let t = Math.ceil((t0 - offset) / step) * step + offset; t <= t1; t += step) ticks.push(t);
    return { ticks, seconds: step < 60000, days: span > 86400000 };
  }

  function timeLabel(t, tt) {
    const d = new Date(t);
    if (tt.days) return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(d, false)}`;
    return clock(d, tt.seconds);
  }

  /* Axes, grid and scales shared by both charts. */
  function frame(width, height, x0, x1, yMax, yFmt, integer) {
    const m = { l: 46, r: 12, t: 8, b: 22 };
    const pw = width - m.l - m.r;
    const ph = height - m.t - m.b;
    const yt = valueTicks(yMax, 4, integer);
    const sx = (x) => m.l + ((x - x0) / Math.max(1, x1 - x0)) * pw;
    const sy = (y) => m.t + ph - (y / yt.top) * ph;
    let svg = '';
    for (const v of yt.ticks) {
      const y = sy(v).toFixed(1);
      svg += `<line class="grid" x1="${m.l}" x2="${width - m.r}" y1="${y}" y2="${y}"/>`;
      svg += `<text class="tick" x="${m.l - 5}" y="${y}" text-anchor="end" dominant-baseline="middle">${esc(yFmt(v))}</text>`;
    }
    const tt = timeTicks(x0, x1, Math.max(2, Math.floor(pw / 90)));
    for (const t of tt.ticks) {
      const x = sx(t).toFixed(1);
      svg += `<line class="axis" x1="${x}" x2="${x}" y1="${m.t + ph}" y2="${m.t + ph + 4}"/>`;
      svg += `<text class="tick" x="${x}" y="${height - 5}" text-anchor="middle">${esc(timeLabel(t, tt))}</text>`;
    }
    svg += `<line class="axis" x1="${m.l}" x2="${width - m.r}" y1="${m.t + ph}" y2="${m.t + ph}"/>`;
    return { svg, sx, sy, m, pw, ph };
  }

  function chartWidth(el) {
    const w = el ? el.clientWidth : 0;
    return Math.max(400, Math.min(w || 1000, 1600));
  }

  function legend(items) {
    return `<div class="legend">${items.map((it) =>
      `<span class="key"><i style="background:${it.colour}"></i>${esc(it.label)}</span>`).join('')}</div>`;
  }

  /* Stacked areas of sectors per state over time (GET /v0/history). */
  function historyChart(hist, width) {
    let samples = (hist && Array.isArray(hist.samples)) ? hist.samples : [];
    if (!samples.length) return '<p class="muted">No history samples yet.</p>';
    if (samples.length === 1) {
      /* One sample has no width: draw it as a flat band over one interval. */
      const s = samples[0];
      samples = [{ at_ms: s.at_ms - (hist.interval_ms || 60000), sectors: s.sectors }, s];
    }
    const seen = new Set();
    for (const s of samples) for (const [k, v] of Object.entries(s.sectors || {})) if (v > 0) seen.add(k);
    const states = STATES.filter((s) => seen.has(s)).concat([...seen].filter((s) => !STATES.includes(s)));
    if (!states.length) return '<p class="muted">No sectors in the sampled period.</p>';
    const totals = samples.map((s) => states.reduce((a, k) => a + ((s.sectors || {})[k] || 0), 0));
    const t0 = samples[0].at_ms;
    const t1 = samples[samples.length - 1].at_ms;
    const height = 150;
    const f = frame(width, height, t0, t1, Math.max(...totals), (v) => String(v), true);
    const base = samples.map(() => 0);
    let paths = '';
    for (const st of states) {
      const top = samples.map((s, i) => base[i] + ((s.sectors || {})[st] || 0));
      const up = samples.map((s, i) => `${f.sx(s.at_ms).toFixed(1)},${f.sy(top[i]).toFixed(1)}`);
      const down = samples.map((s, i) => `${f.sx(s.at_ms).toFixed(1)},${f.sy(base[i]).toFixed(1)}`).reverse();
      const colour = STATE_COLOURS[st] || '#888';
      paths += `<path d="M${up.join('L')}L${down.join('L')}Z" fill="${colour}" fill-opacity="0.85" stroke="${colour}" stroke-width="0.5"><title>${esc(st)}</title></path>`;
      top.forEach((v, i) => { base[i] = v; });
    }
    const last = samples[samples.length - 1].sectors || {};
    const keys = states.map((st) => ({ colour: STATE_COLOURS[st] || '#888', label: `${st} ${last[st] || 0}` }));
    return `<svg class="chart-svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="Sectors per state over time">${f.svg}${paths}</svg>${legend(keys)}`;
  }

  /* Scatter of finished task durations: x = finish time, y = seconds, colour = kind. */
  function durationChart(tasks, width) {
    let done = tasks.filter((t) => t.state === 'done');
    if (!done.length) return '<p class="muted">No finished tasks yet.</p>';
    done.sort((a, b) => a.updated_ms - b.updated_ms);
    if (done.length > MAX_SCATTER_POINTS) done = done.slice(done.length - MAX_SCATTER_POINTS);
    const secs = (t) => Math.max(0, (t.updated_ms - t.created_ms) / 1000);
    let t0 = done[0].updated_ms;
    const t1 = done[done.length - 1].updated_ms;
    if (t1 - t0 < 10000) t0 = t1 - 10000; /* give a lone point some room */
    const yMax = Math.max(...done.map(secs));
    const height = 200;
    const yFmt = (v) => (v >= 3600 ? `${+(v / 3600).toFixed(1)} h` : v >= 120 ? `${Math.round(v / 60)} m`
      : v >= 1 ? `${+v.toFixed(1)} s` : `${+(v * 1000).toPrecision(2)} ms`);
    const f = frame(width, height, t0, t1, yMax, yFmt, false);
    let dots = '';
    for (const t of done) {
      const colour = kindColour(t.kind);
      const of = t.sector == null ? 'no one sector' : `sector ${t.sector}`;
      dots += `<circle cx="${f.sx(t.updated_ms).toFixed(1)}" cy="${f.sy(secs(t)).toFixed(1)}" r="3" fill="${colour}" fill-opacity="0.75"><title>task ${esc(t.id)} ${esc(t.kind)} ${esc(of)}: ${esc(fmtDur(t.updated_ms - t.created_ms))}</title></circle>`;
    }
    const kinds = S.taskKinds.concat([...new Set(done.map((t) => t.kind))].filter((k) => !S.taskKinds.includes(k)));
    const keys = kinds.filter((k) => done.some((t) => t.kind === k)).map((k) => {
      const d = done.filter((t) => t.kind === k).map(secs).sort((a, b) => a - b);
      return { colour: kindColour(k), label: `${k} (${d.length}, median ${fmtDur(d[Math.floor(d.length / 2)] * 1000)})` };
    });
    return `<svg class="chart-svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="Task durations over time">${f.svg}${dots}</svg>${legend(keys)}`;
  }

  /* ---------------------------------------------------------------- 5. pages */

  /* --- stage cells, shared by the pipeline table and the sector page --- */

  /* Progress of a running step as { pct: overall 0..100, label }. */
  function progressInfo(p, size) {
    if (!p) return null;
    const frac = p.total > 0 ? Math.min(1, p.done / p.total) : 0;
    const pct = (x) => Math.round(x * 100);
    if (p.phase === 'labeling') {
      const layer = p.layer || 1;
      const layers = layersOf(size);
      return { pct: pct(Math.min(1, ((layer - 1) + frac) / layers)), label: `layer ${layer} ${pct(frac)}%` };
    }
    /* PC2 builds tree_c then tree_r_last: count each as half. */
    if (p.phase === 'tree_c') return { pct: pct(frac / 2), label: `tree_c ${pct(frac)}%` };
    if (p.phase === 'tree_r_last') return { pct: pct(0.5 + frac / 2), label: `tree_r_last ${pct(frac)}%` };
    if (p.total > 0) return { pct: pct(frac), label: `${p.phase || p.task} ${pct(frac)}%` };
    return null;
  }

  /* The step a failed sector failed at, as a working state name. */
  function normStep(step) {
    if (!step) return null;
    return STEP_OF_FAILURE[step] || step;
  }

  /* Per stage: 'pending' | 'running' | 'done' | 'failed', plus the stage that
   * carries the progress bar. */
  function stagePlan(state, progress, failedStep) {
    const n = STAGES.length;
    if (state === 'Proving') return { cells: Array(n).fill('done'), progressAt: -1 };
    if (REMOVED_STATES.has(state)) {
      /* The stages it had reached before it was removed (failedStep: the state then). */
      if (!failedStep || REMOVED_STATES.has(failedStep)) return { cells: Array(n).fill('pending'), progressAt: -1 };
      const before = stagePlan(failedStep, null, null);
      return { cells: before.cells.map((c) => (c === 'running' || c === 'failed' ? 'removed' : c)), progressAt: -1 };
    }
    let step;
    let status;
    if (FAILED_STATES.has(state)) {
      step = state === 'Failed' ? normStep(failedStep) : STEP_OF_FAILURE[state];
      status = 'failed';
    } else {
      step = state;
      status = 'running';
    }
    const idx = STEP_STAGES[step];
    if (!idx) return { cells: Array(n).fill('pending'), progressAt: -1 };
    const first = Math.min(...idx);
    const cells = STAGES.map((_, i) => (i < first ? 'done' : idx.includes(i) ? status : 'pending'));
    return { cells, progressAt: status === 'running' ? idx[0] : -1 };
  }

  function stageCells(sector, progress, failedStep) {
    const plan = stagePlan(sector.lifecycle.state, progress, failedStep);
    return plan.cells.map((status, i) => {
      const stage = STAGES[i];
      let inner = esc(status);
      let title = `${stage.label}: ${status}`;
      if (i === plan.progressAt) {
        const pi = progressInfo(progress, sector.sector_size);
        if (pi) {
          inner = `<div class="bar"><i style="width:${pi.pct}%"></i></div><span class="plabel">${esc(pi.label)}</span>`;
          title += ` (${pi.label}, about ${pi.pct}% of the stage)`;
        }
      }
      return `<td class="stage ${status}" data-stage="${stage.key}" title="${esc(title)}">${inner}</td>`;
    }).join('');
  }

  function pageError(msg) {
    const el = $('page-error');
    if (!el) return;
    el.hidden = !msg;
    el.textContent = msg ? `Update failed: ${msg}` : '';
  }

  /* --- 5.1 pipeline --- */

  function mountPipeline() {
    return `
      <div id="page-error" class="page-error" hidden></div>
      <section class="toolbar">
        <h2>Pipeline</h2>
        <div id="state-counts" class="chips"></div>
        <label class="filter">State <select id="state-filter"></select></label>
      </section>
      <section class="card">
        <h3>Sectors per state over time</h3>
        <div id="history-chart" class="chart"></div>
      </section>
      <section class="card table-card"><div id="pipeline-wrap"></div></section>`;
  }

  async function loadPipeline() {
    const [sectors, history] = await Promise.all([api('/sectors'), soft(api('/history'))]);
    return { sectors, history };
  }

  function matchesFilter(state, filter) {
    if (filter === 'all') return true;
    if (filter === 'any-failed') return FAILED_STATES.has(state);
    return state === filter;
  }

  function renderPipeline(data) {
    const entries = data.sectors || [];
    const counts = {};
    for (const e of entries) counts[e.sector.lifecycle.state] = (counts[e.sector.lifecycle.state] || 0) + 1;
    const present = STATES.filter((s) => counts[s]).concat(Object.keys(counts).filter((s) => !STATES.includes(s)));
    const failedCount = present.filter((s) => FAILED_STATES.has(s)).reduce((a, s) => a + counts[s], 0);

    /* Counts by state; a click filters on that state. */
    let chips = `<button type="button" class="chip" data-filter="all">All <b>${entries.length}</b></button>`;
    for (const s of present) {
      chips += `<button type="button" class="chip cat-${stateCategory(s)}" data-filter="${esc(s)}">${esc(s)} <b>${counts[s]}</b></button>`;
    }
    setHTML($('state-counts'), chips);

    /* Rebuild the options only when they change, so an open dropdown survives polls. */
    const sel = $('state-filter');
    const opts = [['all', 'All']].concat(present.map((s) => [s, `${s} (${counts[s]})`]));
    const f = S.pipelineFilter;
    if (f !== 'all' && f !== 'any-failed' && !counts[f]) opts.push([f, `${f} (0)`]);
    opts.push(['any-failed', `Failed (any) (${failedCount})`]);
    const key = JSON.stringify(opts);
    if (sel && sel.__key !== key) {
      sel.innerHTML = opts.map(([v, l]) => `<option value="${esc(v)}">${esc(l)}</option>`).join('');
      sel.__key = key;
    }
    if (sel && sel.value !== f) sel.value = f;

    const chartEl = $('history-chart');
    if (data.history && data.history.__error) {
      setHTML(chartEl, `<p class="muted">History unavailable: ${esc(data.history.__error)}</p>`);
    } else {
      setHTML(chartEl, historyChart(data.history, chartWidth(chartEl)));
    }
    renderPipelineTable();
  }

  /* Also called directly when the filter changes, from the last data. */
  function renderPipelineTable() {
    const data = S.data.pipeline;
    if (!data) return;
    const rows = (data.sectors || []).filter((e) => matchesFilter(e.sector.lifecycle.state, S.pipelineFilter));
    /* Failed sectors first, then the rest by number. */
    rows.sort((a, b) => {
      const fa = FAILED_STATES.has(a.sector.lifecycle.state) ? 0 : 1;
      const fb = FAILED_STATES.has(b.sector.lifecycle.state) ? 0 : 1;
      return fa - fb || a.sector.number - b.sector.number;
    });
    const head = `<thead><tr><th>sector</th><th>state</th>${STAGES.map((s) => `<th>${esc(s.label)}</th>`).join('')}<th>updated</th><th>error</th></tr></thead>`;
    let body = '';
    for (const e of rows) {
      const s = e.sector;
      const st = s.lifecycle.state;
      const failed = FAILED_STATES.has(st);
      const cls = failed ? 'row-failed' : REMOVED_STATES.has(st) ? 'row-removed' : '';
      const err = failed && s.last_error ? errText(s.last_error) : '';
      const stateTitle = `${st}, attempts ${s.lifecycle.attempts}${e.failed_step ? `, failed at ${e.failed_step}` : ''}`;
      body += `<tr data-sector="${esc(s.number)}" data-state="${esc(st)}" class="${cls}">`
        + `<td class="num" title="${esc(s.sector_size)}${s.pledged ? ' CC' : ''}">${sectorLink(s.number)}</td>`
        + `<td class="state st-${stateCategory(st)}" title="${esc(stateTitle)}">${esc(st)}</td>`
        + stageCells(s, e.progress, REMOVED_STATES.has(st) ? e.removed_from : e.failed_step)
        + `<td class="time">${esc(fmtTime(s.updated_ms))}</td>`
        + `<td class="err-cell">${err}</td></tr>`;
    }
    if (!rows.length) {
      body = `<tr class="empty"><td colspan="${STAGES.length + 4}">${(data.sectors || []).length ? 'No sector matches the filter.' : 'No sectors yet.'}</td></tr>`;
    }
    setHTML($('pipeline-wrap'), `<table id="pipeline" class="grid-table">${head}<tbody>${body}</tbody></table>`);
  }

  /* --- 5.2 sector --- */

  function mountSector(n) {
    return `
      <div id="page-error" class="page-error" hidden></div>
      <section class="toolbar">
        <h2>Sector ${esc(n)}</h2>
        <span id="sector-state"></span>
        <div class="actions">
          <button type="button" data-action="retry" title="Send a failed sector back to the step that failed">Retry</button>
          <button type="button" data-action="abort" title="Stop work on the sector: it becomes Failed">Abort</button>
          <button type="button" data-action="remove" class="danger" title="Remove the sector and its files">Remove</button>
        </div>
        <span id="action-result"></span>
      </section>
      <div id="sector-body"><p class="muted">Loading\u2026</p></div>`;
  }

  async function loadSector(n) {
    const status = await api(`/sectors/${encodeURIComponent(n)}`);
    const s = status.sector;
    const [pre, commit] = await Promise.all([
      soft(messageById(s.precommit_message)),
      soft(messageById(s.commit_message)),
    ]);
    return { status, pre, commit };
  }

  /* For a Failed sector: the working step it was in when it failed, from its log. */
  function inferFailedStep(events) {
    for (let i = events.length - 1; i >= 0; i -= 1) {
      if (events[i].state !== 'Failed') return normStep(events[i].state);
    }
    return null;
  }

  /* The state a removed sector was in when its removal was asked for. */
  function removedFrom(events) {
    for (let i = events.length - 1; i >= 0; i -= 1) {
      if (!REMOVED_STATES.has(events[i].state)) return events[i].state;
    }
    return null;
  }

  function kv(rows) {
    return `<table class="kv">${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${v}</td></tr>`).join('')}</table>`;
  }

  function receiptHtml(r) {
    if (!r) return '<span class="muted">not executed yet</span>';
    const bad = r.exit_code !== 0;
    return `epoch ${esc(r.epoch)}, exit <span class="${bad ? 'exit-bad' : 'exit-ok'}">${esc(r.exit_code)}</span>${r.error ? ` ${errText(r.error)}` : ''}`;
  }

  function messageRow(id, msg, receipt) {
    if (id === null || id === undefined) return '<span class="muted">not sent</span>';
    let rec = receipt;
    if (rec === undefined) rec = msg && !msg.__error ? msg.receipt : null;
    const note = msg && msg.__error ? ` <span class="muted">(${esc(msg.__error)})</span>` : '';
    return `#${esc(id)} \u00b7 ${receiptHtml(rec)}${note}`;
  }

  function isErrorEvent(ev) {
    const e = ev.event || {};
    return typeof e.error === 'string' || e.event === 'CommitRejected' || e.event === 'PreCommitExpired';
  }

  function renderSector(data) {
    const st = data.status;
    const s = st.sector;
    const state = s.lifecycle.state;
    setHTML($('sector-state'), `<span class="badge st-${stateCategory(state)}">${esc(state)}</span>`);

    const failedStep = state === 'Failed' ? inferFailedStep(st.events)
      : REMOVED_STATES.has(state) ? removedFrom(st.events) : null;
    const strip = `<table class="grid-table strip"><thead><tr>${STAGES.map((x) => `<th>${esc(x.label)}</th>`).join('')}</tr></thead>`
      + `<tbody><tr class="${FAILED_STATES.has(state) ? 'row-failed' : REMOVED_STATES.has(state) ? 'row-removed' : ''}">${stageCells(s, st.progress, failedStep)}</tr></tbody></table>`;

    const pi = progressInfo(st.progress, s.sector_size);
    const identity = kv([
      ['number', esc(s.number)],
      ['size', esc(s.sector_size)],
      ['pledged', s.pledged ? 'yes (committed capacity)' : 'no (data)'],
      ['state', `<span class="st-${stateCategory(state)}">${esc(state)}</span>`],
      ['attempts', esc(s.lifecycle.attempts)],
      ['created', esc(fmtTime(s.created_ms))],
      ['updated', `${esc(fmtTime(s.updated_ms))} <span class="muted">(${esc(fmtAgo(s.updated_ms))})</span>`],
      ['progress', st.progress ? `${esc(st.progress.task)}${pi ? ` \u00b7 ${esc(pi.label)}` : ` \u00b7 ${esc(st.progress.phase || 'starting')}`}` : '<span class="muted">none</span>'],
      ['last error', s.last_error ? `<span class="error wrap">${esc(s.last_error)}</span>` : '<span class="muted">none</span>'],
    ]);

    const hexCell = (v) => (hex(v) ? `<code>${esc(hex(v))}</code>` : '<span class="muted">\u2014</span>');
    const epoch = (e) => (e === null || e === undefined ? '' : ` <span class="muted">epoch ${esc(e)}</span>`);
    const commitments = kv([
      ['comm_d', hexCell(s.comm_d)],
      ['comm_r', hexCell(s.comm_r)],
      ['ticket', hexCell(s.ticket) + epoch(s.ticket_epoch)],
      ['seed', hexCell(s.seed) + epoch(s.seed_epoch)],
    ]);

    const oc = st.on_chain;
    const chain = kv([
      ['PreCommit msg', messageRow(s.precommit_message, data.pre)],
      ['ProveCommit msg', messageRow(s.commit_message, data.commit, s.commit_message == null ? undefined : (st.commit_receipt || (data.commit && !data.commit.__error ? data.commit.receipt : null)))],
      ['on chain', oc ? `landed epoch ${esc(oc.epoch)}, seed epoch ${esc(oc.seed_epoch)}, expiry ${esc(oc.expiry)}, ${oc.proven ? '<span class="exit-ok">proven</span>' : 'not proven yet'}` : '<span class="muted">no PreCommit on chain</span>'],
    ]);

    const pieces = st.pieces.length
      ? `<table class="grid-table" id="pieces"><thead><tr><th>#</th><th>comm_p</th><th>padded</th><th>raw</th><th>added</th><th>path</th></tr></thead><tbody>${st.pieces.map((p) =>
        `<tr><td>${esc(p.index)}</td><td><code title="${esc(hex(p.comm_p))}">${esc(shortHex(p.comm_p, 16))}</code></td><td>${esc(fmtBytes(p.padded_size))}</td><td>${esc(fmtBytes(p.raw_len))}</td><td class="time">${esc(fmtTime(p.added_ms))}</td><td class="path" title="${esc(p.path)}">${esc(p.path)}</td></tr>`).join('')}</tbody></table>`
      : `<p class="muted">${s.pledged ? 'Pledged sector: no data pieces.' : 'No pieces.'}</p>`;

    const events = `<table class="grid-table" id="events"><thead><tr><th>seq</th><th>time</th><th>event</th><th>state after</th><th>details</th></tr></thead><tbody>${st.events.slice().reverse().map((ev) => {
      const e = Object.assign({}, ev.event || {});
      const name = e.event || '?';
      delete e.event;
      const details = Object.keys(e).length ? JSON.stringify(e) : '';
      return `<tr class="${isErrorEvent(ev) ? 'ev-error' : ''}" data-seq="${esc(ev.seq)}"><td class="num">${esc(ev.seq)}</td><td class="time">${esc(fmtTime(ev.at_ms))}</td><td>${esc(name)}</td><td class="st-${stateCategory(ev.state)}">${esc(ev.state)}</td><td class="json">${esc(details)}</td></tr>`;
    }).join('')}</tbody></table>`;

    const tasks = st.tasks.length
      ? `<table class="grid-table" id="sector-tasks"><thead><tr><th>id</th><th>kind</th><th>where</th><th>state</th><th>started</th><th>queued</th><th>took</th><th>error</th></tr></thead><tbody>${st.tasks.slice().reverse().map((t) =>
        `<tr data-task="${esc(t.id)}" data-state="${esc(t.state)}"><td class="num">${esc(t.id)}</td><td>${esc(t.kind)}</td><td>${executor(t)}</td><td><span class="badge st-${taskStateCategory(t.state)}">${esc(t.state)}</span></td><td class="time">${esc(fmtTime(t.created_ms))}</td><td>${t.queued_ms == null ? '<span class="muted">\u2014</span>' : esc(fmtDur(t.queued_ms))}</td><td>${taskTook(t)}</td><td class="err-cell">${errText(t.error)}</td></tr>`).join('')}</tbody></table>`
      : '<p class="muted">No tasks yet.</p>';

    setHTML($('sector-body'), `
      <section class="card">${strip}</section>
      <div class="cards3">
        <section class="card"><h3>Identity</h3>${identity}</section>
        <section class="card"><h3>Commitments</h3>${commitments}</section>
        <section class="card"><h3>Chain</h3>${chain}</section>
      </div>
      <section class="card"><h3>Event log <span class="muted">(newest first)</span></h3>${events}</section>
      <section class="card"><h3>Tasks</h3>${tasks}</section>
      <section class="card"><h3>Pieces</h3>${pieces}</section>`);
  }

  /* --- 5.3 tasks --- */

  function mountTasks() {
    const opt = (v, l) => `<option value="${esc(v)}">${esc(l)}</option>`;
    return `
      <div id="page-error" class="page-error" hidden></div>
      <section class="toolbar">
        <h2>Tasks</h2>
        <span id="task-summary" class="muted"></span>
        <label class="filter">Kind <select id="task-kind-filter">${opt('all', 'All')}</select></label>
        <label class="filter">Outcome <select id="task-outcome-filter">${opt('all', 'All')}${opt('open', 'open (running/reported)')}${opt('bad', 'failed/rejected/expired')}${TASK_STATES.map((k) => opt(k, k)).join('')}</select></label>
      </section>
      <section class="card">
        <h3>Task durations over time <span class="muted">(done tasks)</span></h3>
        <div id="durations-chart" class="chart"></div>
      </section>
      <section class="card table-card"><div id="tasks-wrap"></div></section>`;
  }

  async function loadTasks() {
    await syncTasks();
    return { tasks: [...S.tasks.values()] };
  }

  function taskMatches(t) {
    if (S.taskKindFilter !== 'all' && t.kind !== S.taskKindFilter) return false;
    const o = S.taskOutcomeFilter;
    if (o === 'all') return true;
    if (o === 'open') return OPEN_TASK_STATES.has(t.state);
    if (o === 'bad') return BAD_TASK_STATES.has(t.state);
    return t.state === o;
  }

  function renderTasks(data) {
    const all = data.tasks;
    const open = all.filter(isOpenTask).length;
    setHTML($('task-summary'), `${all.length} tasks, ${open} open`);
    const kindSel = $('task-kind-filter');
    if (kindSel && kindSel.options.length !== S.taskKinds.length + 1) {
      const opt = (v, l) => `<option value="${esc(v)}">${esc(l)}</option>`;
      setHTML(kindSel, opt('all', 'All') + S.taskKinds.map((k) => opt(k, k)).join(''));
    }
    if (kindSel && kindSel.value !== S.taskKindFilter) kindSel.value = S.taskKindFilter;
    const outSel = $('task-outcome-filter');
    if (outSel && outSel.value !== S.taskOutcomeFilter) outSel.value = S.taskOutcomeFilter;

    /* The chart follows the kind filter, not the outcome one (it shows done tasks only). */
    const chartEl = $('durations-chart');
    const forChart = S.taskKindFilter === 'all' ? all : all.filter((t) => t.kind === S.taskKindFilter);
    setHTML(chartEl, durationChart(forChart, chartWidth(chartEl)));
    renderTasksTable();
  }

  function renderTasksTable() {
    const data = S.data.tasks;
    if (!data) return;
    const rows = data.tasks.filter(taskMatches).sort((a, b) => b.id - a.id);
    const shown = rows.slice(0, MAX_TASK_ROWS);
    const head = '<thead><tr><th>id</th><th>kind</th><th>sector</th><th>executor</th><th>started</th><th>queued</th><th>took</th><th>outcome</th><th>message</th></tr></thead>';
    let body = shown.map((t) =>
      `<tr data-task="${esc(t.id)}" data-state="${esc(t.state)}" data-kind="${esc(t.kind)}"><td class="num">${esc(t.id)}</td><td><i class="dot" style="background:${kindColour(t.kind)}"></i>${esc(t.kind)}</td><td class="num">${t.sector == null ? '<span class="muted">\u2014</span>' : sectorLink(t.sector)}</td><td>${executor(t)}</td><td class="time">${esc(fmtTime(t.created_ms))}</td><td>${t.queued_ms == null ? '<span class="muted">\u2014</span>' : esc(fmtDur(t.queued_ms))}</td><td>${taskTook(t)}</td><td><span class="badge st-${taskStateCategory(t.state)}">${esc(t.state)}</span></td><td class="err-cell">${errText(t.error)}</td></tr>`).join('');
    if (!shown.length) body = `<tr class="empty"><td colspan="9">${data.tasks.length ? 'No task matches the filters.' : 'No tasks yet.'}</td></tr>`;
    const note = rows.length > shown.length ? `<p class="muted note">Showing the newest ${shown.length} of ${rows.length} matching tasks.</p>` : '';
    setHTML($('tasks-wrap'), `<table id="tasks" class="grid-table">${head}<tbody>${body}</tbody></table>${note}`);
  }

  /* --- 5.4 workers --- */

  function mountWorkers() {
    return `
      <div id="page-error" class="page-error" hidden></div>
      <section class="toolbar"><h2>Workers</h2><span id="worker-summary" class="muted"></span></section>
      <section class="card table-card"><div id="workers-wrap"></div></section>`;
  }

  async function loadWorkers() {
    const [workers] = await Promise.all([api('/workers'), soft(syncTasks())]);
    return { workers };
  }

  function capsHtml(c) {
    if (!c) return '<span class="muted">\u2014</span>';
    const parts = [];
    parts.push(c.tasks && c.tasks.length ? esc(c.tasks.join(', ')) : '<span class="muted">no tasks</span>');
    if (c.cores) parts.push(`${esc(c.cores)} cores`);
    if (c.memory_bytes) parts.push(esc(fmtBytes(c.memory_bytes)));
    const gpus = c.gpus || [];
    if (gpus.length) {
      const names = [...new Set(gpus.map((g) => g.name))].join(', ');
      parts.push(`${gpus.length} GPU (${esc(names)})`);
    } else {
      parts.push(c.gpu_build ? 'no GPU found' : 'CPU only');
    }
    const params = (c.params || []).map((p) => `${p.sector_size}: ${p.file}`).join('\n');
    return `<span title="${esc(params ? `params:\n${params}` : 'no parameter files')}">${parts.join(' \u00b7 ')}</span>`;
  }

  function renderWorkers(data) {
    const workers = (data.workers || []).slice().sort((a, b) => a.name.localeCompare(b.name));
    const now = Date.now();
    const online = workers.filter((w) => w.state === 'online').length;
    setHTML($('worker-summary'), `${workers.length} registered, ${online} online`);
    const head = '<thead><tr><th>name</th><th>URL</th><th>capabilities</th><th>slots in use</th><th>heartbeat</th><th>state</th><th>failures (1 h)</th><th>registered</th></tr></thead>';
    let body = workers.map((w) => {
      const fails = [];
      for (const t of S.tasks.values()) {
        if (t.worker === w.name && BAD_TASK_STATES.has(t.state) && now - t.updated_ms <= HOUR_MS) fails.push(t);
      }
      const slots = w.capabilities && w.capabilities.slots ? ` / ${esc(w.capabilities.slots)}` : '';
      const health = `<span class="badge w-${esc(w.state)}">${esc(w.state)}</span>`
        + (w.unhealthy ? ` ${errText(w.unhealthy)}` : '')
        + (w.state === 'benched' && w.benched_until_ms ? ` <span class="muted">until ${esc(fmtTime(w.benched_until_ms))}</span> ${errText(w.bench_reason || '')}` : '')
        + (w.revoked && w.state !== 'revoked' ? ' <span class="error">token revoked</span>' : '');
      const failTitle = fails.map((t) => `#${t.id} ${t.kind}${t.sector == null ? '' : ` sector ${t.sector}`}: ${t.state}${t.error ? ` (${t.error})` : ''}`).join('\n');
      return `<tr data-worker="${esc(w.name)}" data-state="${esc(w.state)}">`
        + `<td><b>${esc(w.name)}</b></td>`
        + `<td class="path" title="${esc(w.url)}">${esc(w.url)}</td>`
        + `<td>${capsHtml(w.capabilities)}</td>`
        + `<td class="num" title="${esc(w.tasks.length ? `open tasks: ${w.tasks.join(', ')}` : 'no open tasks')}">${esc(w.tasks.length)}${slots}</td>`
        + `<td class="time" title="${esc(fmtTime(w.last_seen_ms))}">${esc(fmtAgo(w.last_seen_ms))}</td>`
        + `<td class="err-cell">${health}</td>`
        + `<td class="num ${fails.length ? 'error' : ''}" title="${esc(failTitle)}">${fails.length}</td>`
        + `<td class="time" title="instance ${esc(w.instance)}">${esc(fmtTime(w.registered_ms))}</td></tr>`;
    }).join('');
    if (!workers.length) {
      body = '<tr class="empty"><td colspan="8">No workers registered. Create a token with <code>kiln auth create-worker-token NAME</code> and start <code>kiln-worker run</code>.</td></tr>';
    }
    setHTML($('workers-wrap'), `<table id="workers" class="grid-table">${head}<tbody>${body}</tbody></table>`);
  }

  /* --- 5.5 proving --- */

  function mountProving() {
    return `
      <div id="page-error" class="page-error" hidden></div>
      <section class="toolbar"><h2>Proving</h2></section>
      <div id="proving-body"><p class="muted">Loading\u2026</p></div>`;
  }

  async function loadProving() {
    const [info, deadlines, faults] = await Promise.all([
      api('/proving'), api('/proving/deadlines'), api('/proving/faults'),
    ]);
    return { info, deadlines, faults };
  }

  function stat(label, value, cls = '') {
    return `<div class="stat ${cls}"><div class="v">${value}</div><div class="l">${esc(label)}</div></div>`;
  }

  function renderProving(data) {
    const { info, deadlines, faults } = data;
    /* The newest Window PoSt sent for each deadline (of the recent runs): when, and how long it took. */
    const lastSent = new Map();
    for (const r of info.recent_runs || []) {
      if (r.kind !== 'window' || r.error || (r.exit_code != null && r.exit_code !== 0) || r.deadline == null) continue;
      const prev = lastSent.get(r.deadline);
      if (!prev || r.started_ms > prev.started_ms) lastSent.set(r.deadline, r);
    }
    const lastProof = (deadline) => {
      const r = lastSent.get(deadline);
      return r ? `${esc(fmtTime(r.started_ms))} <span class="muted">(${esc(fmtDur(r.vanilla_ms + r.snark_ms))})</span>` : '<span class="muted">\u2014</span>';
    };
    const cur = info.current;
    const sch = info.schedule;
    const summary = `<div class="stats">`
      + stat('head epoch', esc(info.head))
      + stat('current deadline', `${esc(cur.deadline)} <span class="muted">/ ${esc(sch.deadlines)}</span>`)
      + stat('window epochs', `${esc(cur.open)}\u2013${esc(cur.close - 1)}`)
      + stat('challenge epoch', esc(cur.challenge))
      + stat('proving period', esc(cur.period))
      + stat('active', esc(info.active), 'ok')
      + stat('faulty', esc(info.faulty), info.faulty ? 'bad' : '')
      + stat('recovering', esc(info.recovering), info.recovering ? 'warn' : '')
      + `</div><p class="muted note">${esc(sch.deadlines)} deadlines of ${esc(sch.window)} epochs, lookback ${esc(sch.lookback)}; election chance ${esc(sch.election_per_mille)}\u2030 per epoch, winning window ${esc(sch.winning_window)} epochs.</p>`;

    const dl = `<table id="deadlines" class="grid-table"><thead><tr><th>deadline</th><th>period</th><th>window open</th><th>window close</th><th>challenge</th><th>partitions</th><th>sectors</th><th>faulty</th><th>proven last window</th><th>last proof</th></tr></thead><tbody>${deadlines.map((d) => {
      const w = d.window;
      const isCur = w.deadline === cur.deadline && w.period === cur.period;
      return `<tr data-deadline="${esc(w.deadline)}" class="${isCur ? 'current' : ''}"><td class="num">${esc(w.deadline)}${isCur ? ' <span class="badge st-running">open</span>' : ''}</td><td class="num">${esc(w.period)}</td><td class="num">${esc(w.open)}</td><td class="num">${esc(w.close)}</td><td class="num">${esc(w.challenge)}</td><td class="num">${esc(d.partitions)}</td><td class="num">${esc(d.sectors)}</td><td class="num ${d.faulty ? 'error' : ''}">${esc(d.faulty)}</td><td class="num">${esc(d.proven_last_window)}</td><td class="time">${lastProof(w.deadline)}</td></tr>`;
    }).join('') || '<tr class="empty"><td colspan="10">No deadlines.</td></tr>'}</tbody></table>`;

    const fs = faults.sectors || [];
    const faultTable = fs.length
      ? `<table id="faults" class="grid-table"><thead><tr><th>sector</th><th>health</th><th>deadline</th><th>partition</th><th>size</th><th>activation</th></tr></thead><tbody>${fs.map((s) =>
        `<tr data-fault="${esc(s.sector)}"><td class="num">${sectorLink(s.sector)}</td><td><span class="badge ${s.health === 'faulty' ? 'st-failed' : 'st-running'}">${esc(s.health)}</span></td><td class="num">${esc(s.deadline)}</td><td class="num">${esc(s.partition)}</td><td>${esc(s.sector_size)}</td><td class="num">${esc(s.activation)}</td></tr>`).join('')}</tbody></table>`
      : '<p class="muted" id="faults-empty">No faulty or recovering sectors.</p>';
    const evs = (faults.events || []).slice().reverse().slice(0, 50);
    const healthEvents = evs.length
      ? `<table id="health-events" class="grid-table"><thead><tr><th>epoch</th><th>sector</th><th>health</th><th>why</th></tr></thead><tbody>${evs.map((e) =>
        `<tr><td class="num">${esc(e.epoch)}</td><td class="num">${sectorLink(e.sector)}</td><td class="${e.health === 'faulty' ? 'error' : e.health === 'active' ? 'exit-ok' : ''}">${esc(e.health)}</td><td>${esc(e.why)}</td></tr>`).join('')}</tbody></table>`
      : '<p class="muted">No health changes in the last two proving periods.</p>';

    const runs = info.recent_runs || [];
    const runTable = runs.length
      ? `<table id="post-runs" class="grid-table"><thead><tr><th>id</th><th>kind</th><th>deadline</th><th>partition</th><th>started</th><th>vanilla</th><th>snark</th><th>proven</th><th>faults</th><th>prover</th><th>message</th><th>error</th></tr></thead><tbody>${runs.map((r) => {
        const faultTitle = (r.faults || []).map((f) => `sector ${f.sector}: ${f.reason}`).join('\n');
        const where = r.kind === 'winning' ? `<span class="muted">election ${esc(r.election)}</span>` : esc(r.deadline ?? '\u2014');
        const refused = r.exit_code != null && r.exit_code !== 0;
        const why = r.error || (refused ? `refused by the chain (exit ${r.exit_code}): ${r.receipt_error || ''}` : '');
        const sent = r.message == null ? '<span class="muted">\u2014</span>'
          : `#${esc(r.message)}${r.exit_code == null ? ' <span class="muted">pending</span>' : (refused ? ` <span class="exit-bad">exit ${esc(r.exit_code)}</span>` : ' <span class="exit-ok">ok</span>')}`;
        return `<tr class="${why ? 'row-failed' : ''}" data-run="${esc(r.id)}"><td class="num">${esc(r.id)}</td><td>${esc(r.kind)}</td><td class="num">${where}</td><td class="num">${esc(r.partition ?? '\u2014')}</td><td class="time">${esc(fmtTime(r.started_ms))}</td><td class="num">${esc(fmtDur(r.vanilla_ms))}</td><td class="num">${esc(fmtDur(r.snark_ms))}</td><td class="num">${esc((r.proven || []).length)}</td><td class="num ${(r.faults || []).length ? 'error' : ''}" title="${esc(faultTitle)}">${esc((r.faults || []).length)}</td><td>${esc(r.prover)}</td><td class="num">${sent}</td><td class="err-cell">${errText(why)}</td></tr>`;
      }).join('')}</tbody></table>`
      : '<p class="muted">No PoSt runs yet.</p>';

    const el = info.elections || [];
    const elections = el.length
      ? `<table id="elections" class="grid-table"><thead><tr><th>epoch won</th><th>sector</th><th>message</th></tr></thead><tbody>${el.slice().reverse().map((e) =>
        `<tr><td class="num">${esc(e.epoch)}</td><td class="num">${e.sector == null ? '<span class="muted">not proven</span>' : sectorLink(e.sector)}</td><td class="num">${e.message == null ? '<span class="muted">\u2014</span>' : `#${esc(e.message)}`}</td></tr>`).join('')}</tbody></table>`
      : '<p class="muted">No won elections in the last proving period.</p>';

    setHTML($('proving-body'), `
      <section class="card">${summary}</section>
      <section class="card"><h3>Deadlines</h3>${dl}</section>
      <section class="card"><h3>Recent PoSt runs</h3>${runTable}</section>
      <div class="cards2">
        <section class="card"><h3>Faults</h3>${faultTable}<h3>Health changes</h3>${healthEvents}</section>
        <section class="card"><h3>Elections</h3>${elections}</section>
      </div>`);
  }

  /* --- 5.6 chain --- */

  function mountChain() {
    return `
      <div id="page-error" class="page-error" hidden></div>
      <section class="toolbar"><h2>Chain</h2></section>
      <section class="card" id="chain-head"></section>
      <section class="card table-card"><h3>Recent messages <span class="muted">(newest ${KEEP_MESSAGES})</span></h3><div id="messages-wrap"></div></section>`;
  }

  async function loadChain() {
    const [head] = await Promise.all([api('/chain/head'), syncMessages()]);
    return { head, messages: [...S.messages.entries()].sort((a, b) => b[0] - a[0]).map((e) => e[1]) };
  }

  /* The sectors a sealing message carries (none for proving messages). */
  function sealingSectors(m) {
    return m.method === 'PreCommitSectors' || m.method === 'ProveCommitSectors' ? (m.sectors || []).map((x) => x.sector) : [];
  }

  /* The method-specific fields of a message, compactly. */
  function messageDetails(m) {
    switch (m.method) {
      case 'PreCommitSectors': {
        const s = m.sectors || [];
        const one = s.length === 1 ? `, comm_r <code title="${esc(hex(s[0].comm_r))}">${esc(shortHex(s[0].comm_r))}</code>` : '';
        return `${esc(s.length)} sector${s.length === 1 ? '' : 's'}, ticket epoch ${esc([...new Set(s.map((x) => x.ticket_epoch))].join(', '))}${one}`;
      }
      case 'ProveCommitSectors': {
        const s = m.sectors || [];
        return `${esc(s.length)} proof${s.length === 1 ? '' : 's'} of ${esc(fmtBytes((s[0] ? s[0].proof.length : 0) / 2))}${s.some((x) => (x.pieces || []).length) ? `, ${esc(s.reduce((n, x) => n + (x.pieces || []).length, 0))} pieces` : ''}`;
      }
      case 'SubmitWindowedPoSt':
        return `deadline ${esc(m.deadline)}, partition ${esc(m.partition)}, window ${esc(m.open_epoch)}${(m.skipped || []).length ? `, <span class="error">skipped ${esc(m.skipped.join(', '))}</span>` : ''}`;
      case 'DeclareFaults':
      case 'DeclareFaultsRecovered':
        return `sectors ${esc((m.sectors || []).join(', '))}`;
      case 'SubmitWinningPoSt':
        return `election epoch ${esc(m.epoch)}`;
      default:
        return `<span class="json">${esc(JSON.stringify(m))}</span>`;
    }
  }

  function renderChain(data) {
    const h = data.head;
    setHTML($('chain-head'), `<div class="stats">${stat('head epoch', esc(h.epoch))}${stat('messages sent', esc(h.messages))}${stat('executed', esc(h.executed), 'ok')}${stat('pending', esc(h.messages - h.executed), h.messages - h.executed ? 'warn' : '')}</div>`);
    const head = '<thead><tr><th>id</th><th>method</th><th>sector</th><th>details</th><th>executed at</th><th>exit</th><th>return / error</th></tr></thead>';
    let body = data.messages.map((cm) => {
      const m = cm.message || {};
      const r = cm.receipt;
      const bad = r && r.exit_code !== 0;
      return `<tr data-message="${esc(cm.id)}" class="${bad ? 'row-failed' : ''}"><td class="num">${esc(cm.id)}</td><td>${esc(m.method)}</td><td class="num">${sealingSectors(m).map(sectorLink).join(' ')}</td><td>${messageDetails(m)}</td>`
        + `<td class="num">${r ? esc(r.epoch) : '<span class="muted">pending</span>'}</td>`
        + `<td class="num">${r ? `<span class="${bad ? 'exit-bad' : 'exit-ok'}">${esc(r.exit_code)}</span>` : ''}</td>`
        + `<td class="err-cell">${r ? (r.error ? errText(r.error) : '<span class="muted">ok</span>') : ''}</td></tr>`;
    }).join('');
    if (!data.messages.length) body = '<tr class="empty"><td colspan="7">No messages sent yet.</td></tr>';
    setHTML($('messages-wrap'), `<table id="messages" class="grid-table">${head}<tbody>${body}</tbody></table>`);
  }

  const PAGES = {
    pipeline: { nav: 'pipeline', mount: mountPipeline, load: loadPipeline, render: renderPipeline },
    sector: { nav: 'pipeline', mount: mountSector, load: loadSector, render: renderSector },
    tasks: { nav: 'tasks', mount: mountTasks, load: loadTasks, render: renderTasks },
    workers: { nav: 'workers', mount: mountWorkers, load: loadWorkers, render: renderWorkers },
    proving: { nav: 'proving', mount: mountProving, load: loadProving, render: renderProving },
    chain: { nav: 'chain', mount: mountChain, load: loadChain, render: renderChain },
  };

  /* ---------------------------------------------------------------- 6. dialog and actions */

  const ACTIONS = {
    retry: { question: (n) => `Retry sector ${n}? It goes back to the step that failed, with its attempts reset.`, yes: 'Retry' },
    abort: { question: (n) => `Abort sector ${n}? Work on it stops and it becomes Failed.`, yes: 'Abort', reason: true },
    remove: { question: (n) => `Remove sector ${n}? Its files are deleted; this cannot be undone.`, yes: 'Remove' },
    /* Offered after the daemon refused a removal because the chain holds the sector. */
    force: { question: (n) => `Remove sector ${n} although the chain holds it? It will fail every Window PoSt and be declared faulty (on Filecoin: a fault fee each proving period until it is terminated). Its record is kept.`, yes: 'Remove anyway' },
  };

  function closeConfirm() {
    setHTML($('modal-root'), '');
  }

  /* The dialog lives in #modal-root, which polling never redraws. */
  function openConfirm(action, n) {
    const a = ACTIONS[action];
    if (!a) return;
    $('modal-root').__html = null;
    $('modal-root').innerHTML = `
      <div class="backdrop">
        <div id="confirm" role="dialog" aria-modal="true" data-act="${esc(action)}" data-number="${esc(n)}">
          <p id="confirm-text">${esc(a.question(n))}</p>
          ${a.reason ? '<label class="reason">Reason (required) <input id="abort-reason" type="text" maxlength="1024" required></label>' : ''}
          <p id="confirm-error" class="error" hidden></p>
          <div class="buttons">
            <button type="button" id="confirm-yes" class="${action === 'retry' ? 'primary' : 'danger'}">${esc(a.yes)}</button>
            <button type="button" id="confirm-no">Cancel</button>
          </div>
        </div>
      </div>`;
    const focus = $('abort-reason') || $('confirm-no');
    if (focus) focus.focus();
  }

  function setActionResult(ok, text) {
    const el = $('action-result');
    if (!el) return;
    el.className = ok ? 'ok' : 'error';
    el.textContent = text;
  }

  async function confirmYes() {
    const dlg = $('confirm');
    if (!dlg || S.actionBusy) return;
    const action = dlg.dataset.act;
    const n = dlg.dataset.number;
    let body;
    if (action === 'abort') {
      const reason = ($('abort-reason').value || '').trim();
      if (!reason) {
        const e = $('confirm-error');
        e.textContent = 'A reason is required.';
        e.hidden = false;
        $('abort-reason').focus();
        return;
      }
      body = { reason };
    }
    if (action === 'force') body = { force: true };
    const route = action === 'force' ? 'remove' : action;
    S.actionBusy = true;
    for (const b of dlg.querySelectorAll('button')) b.disabled = true;
    try {
      await api(`/sectors/${encodeURIComponent(n)}/${route}`, { method: 'POST', body });
      closeConfirm();
      setActionResult(true, `${route}: done`);
      poke();
    } catch (e) {
      closeConfirm();
      if (e instanceof AuthError) { logout(false); return; }
      setActionResult(false, `${route} failed: ${e.message}`);
      /* The chain holds it: say what follows, and offer to remove it anyway. */
      if (action === 'remove' && e.status === 409 && e.kind === 'failed_precondition') openConfirm('force', n);
    } finally {
      S.actionBusy = false;
    }
  }

  /* ---------------------------------------------------------------- 7. router, polling, sign-out */

  function parseRoute() {
    const parts = location.hash.replace(/^#\/?/, '').split('/');
    const page = parts[0];
    if (page === 'sector' && /^\d+$/.test(parts[1] || '')) return { page, arg: parts[1] };
    if (PAGES[page] && page !== 'sector') return { page, arg: null };
    return { page: 'pipeline', arg: null };
  }

  /* Draws the static skeleton of the current route (once per route change). */
  function mount() {
    S.route = parseRoute();
    S.routeSeq += 1;
    closeConfirm();
    const page = PAGES[S.route.page];
    for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.id === `nav-${page.nav}`);
    const el = $('page');
    el.__html = null;
    el.innerHTML = page.mount(S.route.arg);
    document.title = `kiln \u00b7 ${S.route.page === 'sector' ? `sector ${S.route.arg}` : S.route.page}`;
    const cached = S.data[S.route.page];
    /* Redraw from the last data at once (if it is for this page) while the poll runs. */
    if (cached && S.route.page !== 'sector') {
      try { page.render(cached, S.route.arg); } catch (e) { console.error(e); }
    }
  }

  function renderHeader(status, err) {
    if (status) {
      S.taskKinds = status.task_kinds || [];
      $('instance').textContent = `instance ${status.instance}`;
      const paused = status.paused || [];
      const banner = $('paused-banner');
      banner.hidden = !paused.length;
      setHTML(banner, paused.map((p) =>
        `<div class="paused" data-kind="${esc(p.kind)}"><b>Paused: ${esc(p.kind)} tasks</b> \u2014 ${esc(p.reason)} <span class="muted">(since ${esc(fmtTime(p.since_ms))}; next probe ${esc(fmtTime(p.next_probe_ms))})</span></div>`).join(''));
    }
    const ce = $('conn-error');
    ce.hidden = !err;
    ce.textContent = err ? `status: ${err}` : '';
    ce.title = err || '';
  }

  async function refresh() {
    const seq = S.routeSeq;
    const route = S.route;
    const page = PAGES[route.page];
    const [st, pd] = await Promise.allSettled([api('/status'), page.load(route.arg)]);
    const auth = [st, pd].find((r) => r.status === 'rejected' && r.reason instanceof AuthError);
    if (auth) { logout(false); return; }
    renderHeader(st.status === 'fulfilled' ? st.value : null, st.status === 'rejected' ? st.reason.message : null);
    /* The user moved to another page meanwhile: the next run fetches that one. */
    if (seq !== S.routeSeq) return;
    if (pd.status === 'fulfilled') {
      S.data[route.page] = pd.value;
      page.render(pd.value, route.arg);
      pageError(null);
      $('last-updated').textContent = `last updated ${clock(new Date())}`;
    } else {
      pageError(pd.reason.message);
    }
  }

  /* One request round at a time: the next starts POLL_MS after the last ended. */
  let timer = 0;
  let busy = false;
  let again = false;

  function poke() {
    if (!S.signedIn) return;
    if (busy) { again = true; return; }
    clearTimeout(timer);
    loop();
  }

  async function loop() {
    busy = true;
    try {
      await refresh();
    } catch (e) {
      console.error(e);
      pageError(e.message || String(e));
    }
    busy = false;
    if (!S.signedIn) return;
    if (again) { again = false; loop(); } else { timer = setTimeout(loop, POLL_MS); }
  }

  function showApp(on) {
    $('page').hidden = !on;
    $('nav').hidden = !on;
    $('logout').hidden = !on;
  }

  /* The session ended (401), or the user signs out: the daemon's sign-in page takes over. */
  async function logout(signOut) {
    S.signedIn = null;
    clearTimeout(timer);
    try { localStorage.removeItem(KEY_ITEM); } catch (e) { /* nothing kept */ }
    /* Signing out, or refused (the session ended, or this page has no key):
       the cookie is dropped too, so the reload shows the sign-in form. */
    void signOut;
    try { await fetch('/ui/logout', { method: 'POST', credentials: 'same-origin' }); } catch (e) { /* reloads anyway */ }
    window.location.replace('/ui');
  }

  function start() {
    showApp(true);
    mount();
    poke();
  }

  /* --- event wiring (delegated, so re-rendered markup needs no re-binding) --- */

  document.addEventListener('click', (e) => {
    const t = e.target;
    if (!(t instanceof Element)) return;
    if (t.closest('#confirm-yes')) { confirmYes(); return; }
    if (t.closest('#confirm-no')) { if (!S.actionBusy) closeConfirm(); return; }
    const act = t.closest('#page [data-action]');
    if (act && S.route.page === 'sector') {
      setActionResult(true, '');
      openConfirm(act.dataset.action, S.route.arg);
      return;
    }
    const chip = t.closest('#state-counts [data-filter]');
    if (chip) {
      S.pipelineFilter = chip.dataset.filter;
      const sel = $('state-filter');
      if (sel) {
        if (![...sel.options].some((o) => o.value === S.pipelineFilter)) sel.__key = null;
        sel.value = S.pipelineFilter;
      }
      renderPipelineTable();
    }
  });

  document.addEventListener('change', (e) => {
    const t = e.target;
    if (t.id === 'state-filter') { S.pipelineFilter = t.value; renderPipelineTable(); }
    if (t.id === 'task-kind-filter') { S.taskKindFilter = t.value; if (S.data.tasks) renderTasks(S.data.tasks); }
    if (t.id === 'task-outcome-filter') { S.taskOutcomeFilter = t.value; renderTasksTable(); }
  });

  document.addEventListener('keydown', (e) => {
    if (!$('confirm')) return;
    if (e.key === 'Escape' && !S.actionBusy) closeConfirm();
    if (e.key === 'Enter' && e.target && e.target.id === 'abort-reason') { e.preventDefault(); confirmYes(); }
  });

  window.addEventListener('hashchange', () => {
    if (!S.signedIn) return;
    mount();
    poke();
  });

  $('logout').addEventListener('click', () => logout(true));

  start();
})();
