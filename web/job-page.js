// One job's page (#/jobs/<id>): status and its history, the facts, duration and cost ticking while it
// runs, stage and progress, the log viewer following live over the WebSocket, Cancel and copy-the-ID.
//
// app.js owns the socket, the token and the router; it hands this module what it needs (`ctx`) and
// forwards the socket's open and message events. Every value from the API reaches the DOM as text.

import {
  buildStatusBadge,
  costSoFar,
  dateTimeFormat,
  el,
  formatCost,
  formatDuration,
  formatPrice,
  parseTimestamp,
  plural,
  runningSeconds,
  safeHttpUrl,
} from './util.js';
import { createLogViewer } from './log-viewer.js';
import { buildProgressBlock, paintProgressBlock } from './progress.js';

const LOG_TAIL = 200;
const TICK_MS = 1000;
const COPY_FEEDBACK_MS = 2500;
// Status messages come in bursts (a poll may move a job twice); one job reload serves them all.
const STATUS_RELOAD_MS = 300;

function jobPath(jobId, suffix = '') {
  return `/api/cloud/jobs/${encodeURIComponent(jobId)}${suffix}`;
}

function timeNode(value) {
  const date = parseTimestamp(value);
  if (!date) return el('span', { class: 'muted' }, value ? String(value) : '—');
  return el('time', { datetime: date.toISOString(), title: `${date.toISOString()} (UTC)` }, dateTimeFormat.format(date));
}

function modelName(job) {
  return job && job.model ? String(job.model) : 'Unnamed model';
}

export function createJobPage(ctx) {
  const $ = (selector) => document.querySelector(selector);
  const dom = {
    page: $('#job-page'),
    title: $('#job-title'),
    id: $('#job-page-id'),
    copy: $('#job-copy'),
    copyStatus: $('#job-copy-status'),
    badge: $('#job-page-badge'),
    cancel: $('#job-cancel'),
    status: $('#job-page-status'),
    alert: $('#job-action-alert'),
    alertText: $('#job-action-text'),
    body: $('#job-body'),
    progressCard: $('#job-progress-card'),
    progress: $('#job-progress'),
    facts: $('#job-facts'),
    history: $('#job-history'),
    logs: $('#job-logs'),
    logsState: $('#job-logs-state'),
    logsLatest: $('#job-logs-latest'),
    dialog: $('#cancel-dialog'),
    dialogText: $('#cancel-dialog-text'),
  };

  // Everything about the job on screen; replaced whole when another job is opened. Each asynchronous
  // answer checks that its view is still the current one.
  let view = null;
  let copyTimer = null;
  const viewer = createLogViewer({
    box: dom.logs,
    latest: dom.logsLatest,
    onChange: () => view && renderLogsState(view),
  });

  function newView(jobId) {
    return {
      jobId,
      job: null,
      followSent: false,
      followRefused: null, // the server's reason when it refused the follow (too many on one connection)
      cancelRequested: false,
      cancelling: false,
      timers: { tick: null, progress: null, reload: null, fallback: null },
      progressController: null,
      logs: {
        loaded: false,
        buffer: null, // pushed batches that arrived while a read of the tail was in flight
        source: null,
        truncated: false,
        problem: null,
      },
    };
  }

  const current = (candidate) => candidate === view && view !== null;

  // ------------------------------------------------------------ showing and leaving

  function show(jobId, { focus = false } = {}) {
    if (view && view.jobId === jobId) return;
    leave();
    const opened = newView(jobId);
    view = opened;
    dom.page.hidden = false;
    dom.title.textContent = 'Job';
    dom.id.textContent = jobId;
    dom.id.title = jobId;
    dom.copyStatus.textContent = '';
    dom.badge.replaceChildren();
    dom.cancel.hidden = true;
    dom.body.hidden = true;
    dom.facts.replaceChildren();
    dom.history.replaceChildren();
    viewer.clear();
    dom.logsState.textContent = '';
    hideAlert();
    setStatus('Loading the job…');
    document.title = `Job ${jobId} · jobsync`;
    if (focus) dom.title.focus();
    if (ctx.canCall()) loadJob(opened, { first: true });
    else setStatus('Enter the API token to see this job.');
  }

  function leave() {
    if (!view) return;
    const leaving = view;
    unfollow(leaving);
    for (const timer of Object.values(leaving.timers)) {
      window.clearTimeout(timer);
      window.clearInterval(timer);
    }
    if (leaving.progressController) leaving.progressController.abort();
    if (dom.dialog.open) dom.dialog.close('');
    view = null;
  }

  function hide() {
    leave();
    dom.page.hidden = true;
  }

  // After a new token is saved: read everything again.
  function reload() {
    if (!view) return;
    const jobId = view.jobId;
    leave();
    show(jobId);
  }

  function setStatus(text) {
    dom.status.textContent = text;
    dom.status.hidden = !text;
  }

  function showAlert(text, kind = 'error') {
    dom.alert.dataset.kind = kind;
    dom.alertText.textContent = text;
    dom.alert.hidden = false;
  }

  function hideAlert() {
    dom.alert.hidden = true;
    dom.alertText.textContent = '';
  }

  // ------------------------------------------------------------ the job

  async function loadJob(v, { first = false } = {}) {
    let data;
    try {
      data = await ctx.api(jobPath(v.jobId));
    } catch (err) {
      if (!current(v)) return;
      if (err.status === 404) {
        setStatus(`jobsync knows no job with the ID ${v.jobId}.`);
        dom.body.hidden = true;
        return;
      }
      if (err.status === 401) {
        setStatus('Enter a valid API token to see this job.');
        return;
      }
      // Keep what is on screen; say why it may be stale. The fallback reload tries again.
      setStatus(`Could not load the job: ${err.message}`);
      if (first) startFallbackReload(v);
      return;
    }
    if (!current(v) || !data.job || typeof data.job !== 'object') return;
    setStatus('');
    applyJob(v, data.job);
    if (first) loadLogs(v);
  }

  function applyJob(v, job) {
    const before = v.job;
    v.job = job;
    dom.body.hidden = false;
    dom.title.textContent = modelName(job);
    dom.badge.replaceChildren(buildStatusBadge(job.status, 'job-page-status-badge'));
    dom.page.dataset.status = job.status == null ? '' : String(job.status);
    renderCancel(v);
    renderFacts(v);
    renderHistory(job);
    renderProgressCard(v);
    if (job.is_active) {
      follow(v);
      startFallbackReload(v);
    } else {
      unfollow(v);
      stopTimer(v, 'fallback');
      // The last lines were read when the job ended: take them from the kept tail.
      if (before && before.is_active && v.logs.loaded) loadLogs(v, { merge: true });
    }
    if (job.status === 'running') startRunningTimers(v);
    else stopRunningTimers(v);
    renderLogsState(v);
  }

  function scheduleJobReload(v) {
    window.clearTimeout(v.timers.reload);
    v.timers.reload = window.setTimeout(() => {
      v.timers.reload = null;
      if (current(v) && ctx.canCall()) loadJob(v);
    }, STATUS_RELOAD_MS);
  }

  // While the socket is down (or the server would not let it follow) neither status messages nor log lines
  // arrive: read the job and the newest lines every refresh interval instead.
  function startFallbackReload(v) {
    if (v.timers.fallback) return;
    v.timers.fallback = window.setInterval(() => {
      if (!current(v) || !ctx.canCall() || (ctx.isLive() && !v.followRefused)) return;
      loadJob(v);
      if (v.logs.loaded && !v.logs.buffer) loadLogs(v, { merge: true });
    }, ctx.refreshMs);
  }

  function stopTimer(v, name) {
    window.clearTimeout(v.timers[name]);
    window.clearInterval(v.timers[name]);
    v.timers[name] = null;
  }

  // ------------------------------------------------------------ facts and history

  function fact(label, value, testId) {
    return [el('dt', {}, label), el('dd', { 'data-testid': testId }, value)];
  }

  function renderFacts(v) {
    const job = v.job;
    const items = [];
    if (job.status === 'failed') {
      items.push(
        el('div', { class: 'facts__wide' }, [
          el('dt', {}, 'Error'),
          el('dd', { class: 'job-error', 'data-testid': 'job-page-error' },
            job.error_message ? String(job.error_message) : 'The provider reported no error message.'),
        ]),
      );
    }
    const row = (...pair) => el('div', { class: 'facts__row' }, pair);
    items.push(row(...fact('Model', modelName(job), 'job-page-model')));
    if (job.model_version) {
      // A version id is 64 hex digits: its first 12 name it, as Replicate's own pages do; all of it on hover.
      const version = String(job.model_version);
      const shown = version.length > 14 ? `${version.slice(0, 12)}…` : version;
      items.push(row(...fact('Version', el('code', { title: version }, shown), 'job-page-version')));
    }
    if (job.config_name) items.push(row(...fact('Configuration', String(job.config_name), 'job-page-config')));
    items.push(row(...fact('Provider', job.provider ? String(job.provider) : '—', 'job-page-provider')));
    items.push(row(...fact('Hardware', job.hardware_type ? String(job.hardware_type) : '—', 'job-page-hardware')));
    items.push(row(...fact('Price used', formatPrice(job.price_per_second_usd), 'job-page-price')));
    items.push(row(...fact(job.status === 'running' ? 'Cost so far' : 'Cost', '', 'job-page-cost')));
    items.push(row(...fact(job.status === 'running' ? 'Running for' : 'Duration', '', 'job-page-duration')));
    items.push(row(...fact('Created', timeNode(job.created_at), 'job-page-created')));
    items.push(row(...fact('Started', timeNode(job.started_at), 'job-page-started')));
    items.push(row(...fact('Ended', timeNode(job.completed_at), 'job-page-completed')));
    const output = safeHttpUrl(job.output_url);
    if (output) {
      items.push(
        row(...fact('Output', el('a', { href: output, rel: 'noopener noreferrer', 'data-testid': 'job-page-output' }, output), null)),
      );
    }
    dom.facts.replaceChildren(...items);
    paintClock(v);
  }

  // Duration and cost: final figures for an ended job; for a running one, by the page's clock.
  function paintClock(v) {
    const job = v.job;
    const duration = dom.facts.querySelector('[data-testid="job-page-duration"]');
    const cost = dom.facts.querySelector('[data-testid="job-page-cost"]');
    if (!job || !duration || !cost) return;
    if (job.status === 'running') {
      const seconds = runningSeconds(job, Date.now());
      duration.textContent = seconds == null ? '—' : formatDuration(seconds); // no start time from the provider
      const soFar = costSoFar(job, seconds);
      cost.textContent = soFar == null ? '—' : `≈ ${formatCost(soFar)}`;
      cost.title = soFar == null ? '' : 'Estimated: time so far × the price used; the provider bills its own measured time';
      return;
    }
    if (job.is_active) {
      duration.textContent = 'Not started yet';
      cost.textContent = '—';
      return;
    }
    duration.textContent = formatDuration(job.duration_seconds);
    cost.textContent = formatCost(job.cost_usd);
    cost.title = '';
  }

  function renderHistory(job) {
    const history = Array.isArray(job.history) ? job.history.filter((step) => step && typeof step === 'object') : null;
    if (!history || !history.length) {
      dom.history.replaceChildren(
        el('li', { class: 'history__empty muted' }, history ? 'No status change recorded yet.' : 'The API gave no status history for this job.'),
      );
      return;
    }
    let previous = null;
    const items = history.map((step) => {
      const at = parseTimestamp(step.at);
      const after =
        previous && at ? el('span', { class: 'history__after muted' }, `after ${formatDuration((at - previous) / 1000)}`) : null;
      previous = at || previous;
      return el('li', { class: 'history__step', 'data-testid': 'history-step', 'data-status': String(step.status || '') }, [
        buildStatusBadge(step.status, 'history-status'),
        timeNode(step.at),
        after,
      ]);
    });
    dom.history.replaceChildren(...items);
  }

  // ------------------------------------------------------------ running: the clock and the progress

  function startRunningTimers(v) {
    if (!v.timers.tick) v.timers.tick = window.setInterval(() => current(v) && paintClock(v), TICK_MS);
    if (!v.timers.progress && !v.progressController) pollProgress(v);
  }

  function stopRunningTimers(v) {
    stopTimer(v, 'tick');
    stopTimer(v, 'progress');
    if (v.progressController) v.progressController.abort();
    v.progressController = null;
  }

  function renderProgressCard(v) {
    const running = v.job.status === 'running';
    dom.progressCard.hidden = !running;
    if (!running) {
      dom.progress.replaceChildren();
      return;
    }
    const block = dom.progress.firstElementChild;
    if (block && block.dataset.jobId === v.jobId) return; // keep the last values until the next poll
    dom.progress.replaceChildren(
      buildProgressBlock(v.job, { bar: 'job-page-progress', stage: 'job-page-stage', log: null }),
    );
  }

  function paintProgress(data) {
    const block = dom.progress.firstElementChild;
    if (block) paintProgressBlock(block, data);
  }

  async function pollProgress(v) {
    v.timers.progress = null;
    if (!current(v) || !v.job || v.job.status !== 'running' || !ctx.canCall()) return;
    const controller = new AbortController();
    v.progressController = controller;
    try {
      const data = await ctx.api(jobPath(v.jobId, '/inline-progress'), { signal: controller.signal });
      if (current(v) && !controller.signal.aborted) paintProgress(data);
    } catch (err) {
      if (!current(v) || controller.signal.aborted || err.status === 401 || err.status === 404) return;
      ctx.onProviderTrouble(err); // transient otherwise: the next poll tries again
    } finally {
      if (v.progressController === controller) v.progressController = null;
    }
    if (current(v) && v.job.status === 'running' && !controller.signal.aborted) {
      v.timers.progress = window.setTimeout(() => pollProgress(v), ctx.pollMs);
    }
  }

  // ------------------------------------------------------------ logs

  async function loadLogs(v, { merge = false } = {}) {
    if (!v.logs.buffer) v.logs.buffer = [];
    let data;
    try {
      data = await ctx.api(jobPath(v.jobId, '/logs'), { query: { tail: LOG_TAIL } });
    } catch (err) {
      if (!current(v)) return;
      const pushed = v.logs.buffer || [];
      v.logs.buffer = null;
      for (const batch of pushed) viewer.append(batch);
      v.logs.problem = err.status === 401 ? null : `Could not read the logs: ${err.message}`;
      renderLogsState(v);
      return;
    }
    if (!current(v)) return;
    const lines = Array.isArray(data.lines) ? data.lines.map((line) => String(line)) : [];
    v.logs.source = data.source === 'kept' || data.source === 'provider' ? data.source : null;
    v.logs.truncated = data.truncated === true;
    v.logs.problem = null;
    v.logs.loaded = true;
    if (merge) viewer.appendUnseen(lines);
    else viewer.replace(lines);
    const pushed = v.logs.buffer || [];
    v.logs.buffer = null;
    for (const batch of pushed) viewer.appendUnseen(batch);
    renderLogsState(v);
  }

  function renderLogsState(v) {
    if (!current(v)) return;
    const logs = v.logs;
    const parts = [];
    if (logs.problem) parts.push(logs.problem);
    else if (!logs.loaded) parts.push('Reading the logs…');
    else if (!viewer.lines().length) parts.push('No log lines yet.');
    if (v.job && v.job.is_active) {
      if (!viewer.autoScroll()) parts.push('Paused while you read: new lines are added below');
      else if (v.followRefused) parts.push(`Not following live (${v.followRefused}): refreshed with the job`);
      else if (v.followSent) parts.push('Following live');
      else parts.push('Not following live (no WebSocket): refreshed with the job');
    }
    // Said once the job has ended: the provider deletes its logs an hour later, jobsync keeps the tail.
    if (logs.source === 'kept' && v.job && !v.job.is_active) parts.push('the tail jobsync keeps');
    if (logs.truncated && logs.loaded) parts.push(`first read: the last ${LOG_TAIL} ${plural(LOG_TAIL, 'line', 'lines')}`);
    dom.logsState.textContent = parts.join(' · ');
  }

  // ------------------------------------------------------------ live follow

  function follow(v) {
    if (v.followSent || v.followRefused || !v.job || !v.job.is_active) return;
    if (ctx.sendLive({ action: 'follow', job_id: v.jobId })) v.followSent = true;
  }

  function unfollow(v) {
    if (!v.followSent) return;
    v.followSent = false;
    ctx.sendLive({ action: 'unfollow', job_id: v.jobId });
  }

  // The socket (re)opened: a follow lives on a connection, so ask again; catch up on what was missed.
  function onSocketOpen() {
    const v = view;
    if (!v) return;
    v.followSent = false;
    v.followRefused = null; // a new connection: the server counts its follows afresh
    if (!v.job) return;
    follow(v);
    renderLogsState(v);
    if (v.logs.loaded) {
      loadJob(v);
      if (v.job.is_active) loadLogs(v, { merge: true });
    }
  }

  function onSocketClosed() {
    if (!view) return;
    view.followSent = false;
    renderLogsState(view);
  }

  function onSocketMessage(message) {
    const v = view;
    if (!v || !message) return;
    // The server answers a follow on the same socket; its error names no job, but only a follow is
    // outstanding from this page (list reloads are HTTP).
    if (message.type === 'error' && v.followSent) {
      v.followSent = false;
      v.followRefused = typeof message.message === 'string' && message.message ? message.message : 'refused';
      renderLogsState(v);
      return;
    }
    if (message.job_id !== v.jobId) return;
    if (message.type === 'job_log_lines' && Array.isArray(message.lines)) {
      const lines = message.lines.map((line) => String(line));
      if (v.logs.buffer) v.logs.buffer.push(lines);
      else viewer.append(lines);
    } else if (message.type === 'job_status_changed') {
      scheduleJobReload(v);
    }
  }

  // ------------------------------------------------------------ cancel

  function renderCancel(v) {
    const active = Boolean(v.job && v.job.is_active);
    dom.cancel.hidden = !active;
    dom.cancel.disabled = v.cancelling || v.cancelRequested;
    dom.cancel.setAttribute('aria-busy', v.cancelling ? 'true' : 'false');
    dom.cancel.textContent = v.cancelling ? 'Cancelling…' : v.cancelRequested ? 'Cancel requested' : 'Cancel job';
  }

  function askToCancel() {
    const v = view;
    if (!v || !v.job || !v.job.is_active || v.cancelling) return;
    const provider = v.job.provider === 'replicate' ? 'Replicate' : String(v.job.provider || 'the provider');
    dom.dialogText.textContent =
      `${modelName(v.job)} (job ${v.jobId}) will be stopped at ${provider}. ` +
      'A cancelled job cannot be resumed; the time it has run so far is still billed.';
    dom.dialog.returnValue = '';
    dom.dialog.showModal();
  }

  function onDialogClose() {
    const confirmed = dom.dialog.returnValue === 'cancel';
    dom.dialog.returnValue = '';
    if (confirmed && view) cancelJob(view);
    else if (!dom.cancel.hidden) dom.cancel.focus();
  }

  async function cancelJob(v) {
    v.cancelling = true;
    renderCancel(v);
    hideAlert();
    try {
      const data = await ctx.api(jobPath(v.jobId, '/cancel'), { method: 'POST' });
      if (!current(v)) return;
      v.cancelRequested = true;
      if (data.job && typeof data.job === 'object') applyJob(v, data.job);
      ctx.showToast(
        v.job && v.job.is_active ? `Cancel requested: waiting for ${v.jobId} to stop` : `Job ${v.jobId} is ${v.job.status}`,
      );
      scheduleJobReload(v); // the history, with the cancel in it
    } catch (err) {
      if (!current(v)) return;
      if (err.status === 409) {
        showAlert('This job had already ended: there was nothing to cancel.', 'info');
        scheduleJobReload(v);
      } else if (err.status === 403) {
        showAlert(`Not allowed: cancelling needs an API token with the operate scope (403: ${err.message})`);
      } else if (err.status === 404) {
        showAlert(`jobsync does not know this job (404: ${err.message})`);
      } else if (err.status === 502) {
        showAlert(`The provider did not cancel the job: ${err.message}`);
      } else if (err.status !== 401) {
        showAlert(`Could not cancel the job: ${err.message}`);
      }
    } finally {
      if (current(v)) {
        v.cancelling = false;
        renderCancel(v);
        if (!dom.cancel.hidden && !dom.cancel.disabled) dom.cancel.focus();
      }
    }
  }

  // ------------------------------------------------------------ copy the ID

  function copyWithSelection(text) {
    const area = el('textarea', { readonly: true, class: 'visually-hidden' });
    area.value = text;
    document.body.append(area);
    area.select();
    let copied = false;
    try {
      copied = document.execCommand('copy');
    } catch {
      copied = false;
    }
    area.remove();
    return copied;
  }

  async function copyId() {
    if (!view) return;
    const jobId = view.jobId;
    let copied = false;
    try {
      await navigator.clipboard.writeText(jobId);
      copied = true;
    } catch {
      copied = copyWithSelection(jobId); // no clipboard API (plain http on another host) or no permission
    }
    window.clearTimeout(copyTimer);
    dom.copyStatus.textContent = copied ? 'Copied' : 'Could not copy: select the ID and copy it';
    copyTimer = window.setTimeout(() => {
      dom.copyStatus.textContent = '';
    }, COPY_FEEDBACK_MS);
  }

  dom.copy.addEventListener('click', copyId);
  dom.cancel.addEventListener('click', askToCancel);
  dom.dialog.addEventListener('close', onDialogClose);

  return {
    show,
    hide,
    reload,
    onSocketOpen,
    onSocketClosed,
    onSocketMessage,
    currentJobId: () => (view ? view.jobId : null),
  };
}
