/// <reference lib="dom" />
import type { Dom } from './dom.js';
import type { Format } from './format.js';
import type { FiguresResponse, StatusResponse } from './types.js';

export interface FigureTile {
  testid: string;
  label: string;
  value: string;
  detail: string;
}

/** The deployment figures' tiles (browser code, see dom.ts). */
export function createFiguresView(dom: Dom, format: Format) {
  const { duration } = format;

  /** What each tile says: a pure function of the snapshot. */
  function figureTiles(status: StatusResponse, figures: FiguresResponse): FigureTile[] {
    const r = figures.rollouts;
    const ended = r.succeeded + r.failed + r.aborted;
    const rate = r.successRate === null ? '—' : `${Math.round(r.successRate * 100)}%`;
    const rateDetail =
      ended === 0
        ? 'no rollout has finished yet'
        : `${r.succeeded} of ${ended} completed` + (r.failed ? `, ${r.failed} halted` : '') + (r.aborted ? `, ${r.aborted} aborted` : '');
    const rollbackTile = (testid: string, label: string, times: FiguresResponse['rollback'], none: string): FigureTile => ({
      testid,
      label,
      value: times.medianMs === null ? '—' : duration(times.medianMs),
      detail: times.count === 0 ? none : `median of ${times.count} · last ${duration(times.lastMs)} · max ${duration(times.maxMs)}`,
    });
    const u = figures.updates;
    const perHour =
      u.perHourWhileRolling === null
        ? '—'
        : String(u.perHourWhileRolling >= 10 ? Math.round(u.perHourWhileRolling) : Math.round(u.perHourWhileRolling * 10) / 10);
    let nodes = 0;
    let healthy = 0;
    let silent = 0;
    for (const group of status.groups) {
      for (const node of group.nodes) {
        nodes++;
        if (node.silent) silent++;
        else if (node.health === 'healthy') healthy++;
      }
    }
    const groups = status.groups.length;
    return [
      { testid: 'figure-success-rate', label: 'Rollout success rate', value: rate, detail: rateDetail },
      rollbackTile('figure-rollback-time', 'Time to roll back', figures.rollback, 'no rollback so far'),
      rollbackTile('figure-fleet-rollback-time', 'Time to roll the fleet back', figures.fleetRollback, 'no fleet rollback so far'),
      {
        testid: 'figure-updates-per-hour',
        label: 'Nodes updated per hour',
        value: perHour,
        detail: `while rolling out · ${u.lastHour} in the last hour, ${u.last24h} in 24 h`,
      },
      {
        testid: 'figure-fleet',
        label: 'Healthy nodes',
        value: `${healthy} / ${nodes}`,
        detail: groups + (groups === 1 ? ' group' : ' groups') + (silent ? ` · ${silent} silent` : ''),
      },
    ];
  }

  function render(status: StatusResponse, figures: FiguresResponse): void {
    const { el } = dom;
    dom.byId('figures').replaceChildren(
      ...figureTiles(status, figures).map((tile) =>
        el(
          'div',
          { className: 'tile', 'data-testid': tile.testid },
          el('div', { className: 'tile-label', text: tile.label }),
          el('div', { className: 'tile-value', 'data-testid': `${tile.testid}-value`, text: tile.value }),
          el('div', { className: 'tile-detail', text: tile.detail }),
        ),
      ),
    );
  }

  return { figureTiles, render };
}
