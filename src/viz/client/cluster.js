/**
 * The cluster view at the scrubbed event: job state, hosts with their agents and ranks (liveness,
 * incarnation, policy state), restarts, the last checkpoint, rank failures and injected faults
 * (`chaos.*` events). Built with DOM nodes and textContent only: event text is never HTML.
 */
import { stateColor } from './diagram.js';

function h(tag, cls, text, parent) {
  const n = document.createElement(tag);
  if (cls) n.className = cls;
  if (text !== undefined) n.textContent = text;
  if (parent) parent.appendChild(n);
  return n;
}

export class ClusterView {
  constructor(box, model, onSelect) {
    this.box = box;
    this.model = model;
    this.onSelect = onSelect;
    box.addEventListener('click', (ev) => {
      const li = ev.target.closest('[data-index]');
      if (li) onSelect(Number(li.dataset.index));
    });
  }

  render(s, cursor) {
    const m = this.model;
    const frag = document.createDocumentFragment();
    const dl = h('dl', '', undefined, frag);
    const row = (k, v) => {
      h('dt', '', k, dl);
      h('dd', '', v, dl).style.margin = '0';
    };
    row('job', s.jobState + (s.jobFailed ? `: ${s.jobFailed}` : ''));
    row('world', `${s.world} rank${s.world === 1 ? '' : 's'} on ${s.hosts.length || '?'} host${s.hosts.length === 1 ? '' : 's'}`);
    row('step', String(s.step));
    row('restarts', String(s.restarts));
    row('checkpoint', s.lastCheckpoint === null ? '—' : `step ${s.lastCheckpoint}`);
    row('faults', String(s.faults));
    const hosts = s.hosts.length ? s.hosts.map((x, hi) => ({ name: x.host, hi })) : [{ name: 'ranks', hi: null }];
    for (const host of hosts) {
      const box = h('div', 'host', undefined, frag);
      box.dataset.host = String(host.hi ?? '');
      const joined = host.hi === null || s.agents[host.hi];
      h('div', `name${joined ? '' : ' off'}`, `${host.name}${host.hi === null ? '' : joined ? ' · agent up' : ' · agent not joined'}`, box);
      const ranks = h('div', 'ranks', undefined, box);
      for (let r = 0; r < s.world; r++) {
        if (host.hi !== null && s.rankHost[r] !== host.hi) continue;
        const life = s.rankLife[r];
        const chip = h('span', `rank ${life}`, `r${r}${s.rankInc[r] ? `·${s.rankInc[r]}` : ''}`, ranks);
        chip.dataset.rank = String(r);
        chip.dataset.life = life;
        chip.style.background = stateColor(s.rankPath[r]);
        chip.title = `rank ${r} · ${life} · incarnation ${s.rankInc[r]} · ${s.rankPath[r]}`;
      }
    }
    const listOf = (title, idx, fmt) => {
      const upto = idx.filter((i) => i <= cursor);
      if (!upto.length) return;
      h('div', '', `${title} (${upto.length})`, frag);
      const ul = h('ul', '', undefined, frag);
      for (const i of upto.slice(-20)) {
        const li = h('li', '', fmt(m.events[i]), ul);
        li.dataset.index = String(i);
      }
    };
    listOf('injected faults', m.faults, (e) => `${e.type}${Number.isInteger(e.rank) ? ` r${e.rank}` : ''} ${e.what ?? e.detail ?? ''}`.trim());
    listOf('rank failures', m.failures, (e) => `r${e.rank}: ${String(e.reason ?? '').split('\n')[0]}`);
    listOf('restarts', m.restartsAt, (e) => `attempt ${e.attempt}: ${String(e.reason ?? '').split('\n')[0]}`);
    this.box.replaceChildren(frag);
  }
}
