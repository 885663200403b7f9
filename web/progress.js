// A running job's stage and progress bar, as the list and the job page both show it, painted from an
// inline-progress answer ({stage, progress, eta_seconds, last_log}).

import { el, formatDuration } from './util.js';

// Each bar names its job: a screen reader's list of progress bars tells them apart.
export function progressLabel(job) {
  return `Training progress of ${job.model ? String(job.model) : 'an unnamed model'} (job ${job.job_id})`;
}

// `testIds` name the bar, the stage and (when the block shows it) the last log line.
export function buildProgressBlock(job, testIds = { bar: 'job-progress', stage: 'job-stage', log: 'job-last-log' }) {
  return el('div', { class: 'progress', 'data-job-id': job.job_id }, [
    el('div', { class: 'progress__head' }, [
      el('span', { class: 'progress__stage', 'data-testid': testIds.stage }, 'Starting…'),
      el('span', { class: 'progress__pct' }),
    ]),
    el('progress', { class: 'progress__bar', 'data-testid': testIds.bar, max: '100', 'aria-label': progressLabel(job) }),
    el('div', { class: 'progress__meta' }, [el('span', { class: 'progress__eta' })]),
    testIds.log ? el('p', { class: 'progress__log', 'data-testid': testIds.log }, '') : null,
  ]);
}

export function paintProgressBlock(block, data) {
  const stage = block.querySelector('.progress__stage');
  const pct = block.querySelector('.progress__pct');
  const bar = block.querySelector('.progress__bar');
  const eta = block.querySelector('.progress__eta');
  const log = block.querySelector('.progress__log');

  stage.textContent = data.stage ? String(data.stage) : 'Running';

  const value = Number(data.progress);
  if (data.progress != null && Number.isFinite(value)) {
    const clamped = Math.min(100, Math.max(0, value));
    const rounded = Math.round(clamped * 10) / 10;
    bar.value = clamped;
    bar.setAttribute('value', String(clamped));
    bar.setAttribute('aria-valuenow', String(rounded));
    bar.setAttribute('aria-valuetext', `${rounded}%`);
    pct.textContent = `${rounded}%`;
  } else {
    // No progress known: an indeterminate bar.
    bar.removeAttribute('value');
    bar.removeAttribute('aria-valuenow');
    bar.setAttribute('aria-valuetext', 'Progress unknown');
    pct.textContent = '';
  }

  const etaSeconds = Number(data.eta_seconds);
  eta.textContent =
    data.eta_seconds != null && Number.isFinite(etaSeconds) ? `ETA ${formatDuration(etaSeconds)}` : '';

  if (log) {
    const lastLog = data.last_log ? String(data.last_log) : '';
    log.textContent = lastLog;
    log.title = lastLog;
    log.hidden = !lastLog;
  }
}
