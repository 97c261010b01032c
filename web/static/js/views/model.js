// One run: status, latest metrics, the live reward chart, stop, inference, the replay
// and the training assistant. Live updates come over GET /models/<id>/events.

import { describe, follow, get, post } from '../api.js';
import { LineChart } from '../chart.js';
import { ACTIVE, badge, errorBox, fmt, fmtTime, h, runTitle } from '../dom.js';
import { Episodes } from '../episodes.js';
import { assistantPanel } from './assistant.js';
import { inferencePanel, replayPanel } from './inference.js';

// The loss each algorithm reports first, then the system figures worth watching.
const LOSSES = [['losses/td_loss', 'TD loss'], ['losses/policy_loss', 'Policy loss'],
  ['losses/critic_loss', 'Critic loss']];
const HEADLINE = [
  ['charts/env_steps_per_s', 'Env steps/s'],
  ['charts/policy_lag', 'Policy lag (updates)'],
  ['charts/replay_ratio', 'Replay ratio'],
  ['env_steps', 'Env steps'],
];

function definitions(pairs) {
  return h('dl', { class: 'facts' }, pairs.map(([term, value]) => [
    h('dt', {}, term), h('dd', {}, value)]));
}

// The metrics panel's content; `open` keeps the full list open across updates.
function metricsView(metrics, open = false) {
  if (!metrics) return h('p', { class: 'muted' }, 'No metrics reported yet.');
  const loss = LOSSES.find(([key]) => key in metrics);
  const pairs = [[loss ? loss[1] : 'Loss', fmt(loss ? metrics[loss[0]] : null)],
    ...HEADLINE.map(([key, label]) => [label, fmt(metrics[key])])];
  const all = Object.keys(metrics).sort();
  return h('div', {}, definitions(pairs),
    h('details', { open }, h('summary', {}, `All ${all.length} metrics`),
      definitions(all.map((key) => [key, fmt(metrics[key])]))));
}

function summaryView(model) {
  return definitions([
    ['Algorithm', model.algorithm.toUpperCase()],
    ['Environment', model.env_id],
    ['Episodes', `${model.current_episode} / ${model.target_episode}`],
    ['Rollout workers', String(model.num_workers)],
    ['Best evaluation', fmt(model.best_eval_return)],
    ['Last evaluation', fmt(model.last_eval_return)],
    ['Seed', String(model.seed)],
    ['Created', fmtTime(model.create_time)],
  ]);
}

// Every status the run went through, oldest first; `open` keeps the list open on updates.
function historyView(history, open) {
  if (!history?.length) return null;
  return h('details', { open }, h('summary', {}, `Status history (${history.length})`),
    h('ol', { class: 'history' }, history.map((change) => h('li', {},
      h('time', { datetime: change.create_time }, fmtTime(change.create_time)), ' ',
      badge(change.status),
      change.reason ? ` ${change.reason}` : '',
      change.actor ? h('span', { class: 'muted' }, ` (${change.actor})`) : null))));
}

export async function renderModel(view, { args }) {
  const id = Number(args[0]);
  let model = await get(`/models/${id}/`);
  const cleanups = [];

  const title = h('h1', {}, runTitle(model));
  const statusLine = h('p', { class: 'status-line', role: 'status' });
  const stopButton = h('button', { type: 'button', class: 'danger' }, 'Stop training');
  const stopMessage = h('p', { class: 'action-message', role: 'status' });
  const summary = h('div');
  const history = h('div');
  const metrics = h('div');
  const liveState = h('p', { class: 'live-state muted', role: 'status' }, 'Connecting…');

  const showModel = () => {
    statusLine.replaceChildren(h('span', {}, 'Status: ', badge(model.status),
      model.status_reason ? h('span', { class: 'reason' }, ` — ${model.status_reason}`) : null));
    const active = ACTIVE.has(model.status);
    stopButton.hidden = !active;
    stopButton.disabled = model.status === 'stopping';
    if (!active) {
      stopMessage.textContent = '';
      if (liveState.textContent === 'Live') liveState.textContent = 'Live (the run has ended)';
    }
    summary.replaceChildren(summaryView(model));
    metrics.replaceChildren(metricsView(model.metrics));
    const open = history.querySelector('details')?.open ?? false;
    history.replaceChildren(...[historyView(model.status_history, open)].filter(Boolean));
  };
  const reload = async () => {
    try {
      model = await get(`/models/${id}/`);
      showModel();
    } catch (err) {
      statusLine.replaceChildren(errorBox(describe(err)));
    }
  };

  stopButton.addEventListener('click', async () => {
    stopButton.disabled = true;
    stopMessage.textContent = 'Asking the run to stop…';
    try {
      const data = await post('/stop-train/', { model_id: id });
      model.status = data.status;
      stopMessage.textContent = data.status === 'stopped' ? 'Stopped.'
        : 'Stop requested: the actors finish, save a checkpoint and exit.';
      showModel();
    } catch (err) {
      stopMessage.textContent = describe(err);
      stopButton.disabled = false;
      reload();
    }
  });

  const chartSection = h('section', { class: 'panel wide', 'aria-labelledby': 'rewards-h' },
    h('div', { class: 'title-row' }, h('h2', { id: 'rewards-h' }, 'Episode rewards'), liveState));
  view.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/' }, '← All runs'), ' · ',
      h('a', { href: `#/compare?ids=${id}` }, 'Compare with other runs')),
    h('div', { class: 'title-row' }, title, stopButton),
    statusLine, stopMessage,
    h('div', { class: 'grid' },
      h('section', { class: 'panel', 'aria-labelledby': 'summary-h' },
        h('h2', { id: 'summary-h' }, 'Run'), summary, history),
      h('section', { class: 'panel', 'aria-labelledby': 'metrics-h' },
        h('h2', { id: 'metrics-h' }, 'Latest metrics'), metrics),
      chartSection,
      inferencePanel(model, cleanups),
      replayPanel(model, cleanups),
      assistantPanel(model, cleanups)),
  );
  showModel();

  const chart = new LineChart(chartSection, {
    label: `Episode rewards of ${runTitle(model)}`,
    xLabel: 'Episode',
    yLabel: 'Reward',
    empty: 'No episodes yet.',
  });
  const episodes = new Episodes(id, () => chart.setSeries([
    { label: 'Reward', xs: episodes.xs, ys: episodes.raw, kind: 'raw', color: 0 },
    { label: 'Smoothed', xs: episodes.xs, ys: episodes.smoothed, kind: 'line', color: 0 },
  ]));
  chart.setSeries([]);
  episodes.sync().catch((err) => liveState.replaceChildren(errorBox(describe(err))));

  const stop = follow(`/models/${id}/events`, {
    onEvent(type, data) {
      if (type === 'episode') {
        episodes.onLive(data);
        model.current_episode = Math.max(model.current_episode, episodes.xs.length);
      } else if (type === 'metrics') {
        model.metrics = { ...data.values, env_steps: data.env_steps };
        const open = metrics.querySelector('details')?.open ?? false;
        metrics.replaceChildren(metricsView(model.metrics, open));
        return;
      } else if (type === 'status' || type === 'evaluation') {
        reload().then(() => {
          if (!ACTIVE.has(model.status)) episodes.sync().catch(() => {});
        });
        return;
      }
      summary.replaceChildren(summaryView(model));
    },
    onState(state, error) {
      const text = {
        open: ACTIVE.has(model.status) ? 'Live' : 'Live (the run has ended)',
        retrying: `Live updates interrupted${error ? ` (${describe(error)})` : ''}; reconnecting…`,
        failed: `No live updates: ${describe(error)}`,
      }[state];
      liveState.textContent = text;
      if (state === 'open') episodes.sync().catch(() => {});
    },
  });
  cleanups.push(stop, () => episodes.close(), () => chart.destroy());
  return () => cleanups.forEach((fn) => fn());
}
