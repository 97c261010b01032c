// A run's episode rewards for its chart: loaded from GET /models/<id>/train-data/, then
// extended live from the run's `episode` events.
//
// A live event carries the reward but not the episode number the service gave it, so a
// live point is numbered after the last one and smoothed here the way the service does
// it (exponential moving average, 0.95 on the previous value). Shortly after live points
// arrive, the tail is read back from the service, which replaces them with the stored
// rows: numbering and smoothing are then exactly the service's, even if the stream
// repeated or missed an event.

import { get } from './api.js';

const PAGE_SIZE = 500;
const SMOOTHING = 0.95;
const SYNC_DELAY_MS = 2000;

export class Episodes {
  constructor(modelId, onChange) {
    this.modelId = modelId;
    this.onChange = onChange;
    this.xs = [];
    this.raw = [];
    this.smoothed = [];
    this.confirmed = 0; // episodes 1..confirmed are the service's own rows
    this.syncing = false;
    this.dirty = false;
    this.timer = 0;
    this.closed = false;
  }

  // Stored rows after episode `after`, page by page.
  async rowsAfter(after) {
    const rows = [];
    let page = Math.floor(after / PAGE_SIZE) + 1;
    for (;;) {
      const data = await get(`/models/${this.modelId}/train-data/`, { page, page_size: PAGE_SIZE });
      rows.push(...data.train_data.filter((row) => row.episode > after));
      if (page >= data.total_pages || this.closed) return rows;
      page += 1;
    }
  }

  truncate(length) {
    this.xs.length = length;
    this.raw.length = length;
    this.smoothed.length = length;
  }

  push(episode, reward, smoothed) {
    this.xs.push(episode);
    this.raw.push(reward);
    this.smoothed.push(smoothed);
  }

  // Replace everything after the confirmed rows with what the service stored.
  async sync() {
    if (this.syncing) {
      this.dirty = true;
      return;
    }
    this.syncing = true;
    try {
      do {
        this.dirty = false;
        const rows = await this.rowsAfter(this.confirmed);
        if (this.closed) return;
        this.truncate(this.confirmed);
        for (const row of rows) this.push(row.episode, row.reward, row.smoothed_reward);
        this.confirmed = this.xs.length ? this.xs[this.xs.length - 1] : 0;
        this.onChange();
      } while (this.dirty);
    } finally {
      this.syncing = false;
    }
  }

  // One `episode` event of the run's stream.
  onLive(event) {
    if (this.syncing) {
      this.dirty = true; // the sync in flight may or may not have it: read again after
      return;
    }
    const n = this.xs.length;
    const previous = n ? this.smoothed[n - 1] : event.reward;
    this.push((n ? this.xs[n - 1] : 0) + 1, event.reward,
      SMOOTHING * previous + (1 - SMOOTHING) * event.reward);
    this.onChange();
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = 0;
        if (!this.closed) this.sync().catch(() => {});
      }, SYNC_DELAY_MS);
    }
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
  }
}
