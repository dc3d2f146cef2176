/**
 * Exports a statechart's own definition (states, nesting, ordered guarded transitions) as JSON
 * for the visualizer, or as a Mermaid state diagram. Reads the machine; never runs it.
 */
import type { AnyStateMachine, AnyStateNode } from 'xstate';

export interface ChartState {
  id: string;
  key: string;
  parent: string | null;
  initial: string | null;
  description: string | null;
  children: string[];
}

export interface ChartTransition {
  source: string;
  event: string;
  /** target state ids; empty for a transition that stays (actions only) */
  targets: string[];
  guard: string | null;
  /** position among the source's handlers of this event (first enabled wins) */
  order: number;
}

export interface Chart {
  id: string;
  states: ChartState[];
  transitions: ChartTransition[];
}

// The parts of XState's StateNode this exporter reads.
function guardName(g: unknown): string | null {
  if (!g) return null;
  if (typeof g === 'string') return g;
  if (typeof g === 'object' && g && 'type' in g) return String((g as { type: unknown }).type);
  if (typeof g === 'function') return g.name || 'guard';
  return 'guard';
}

export function exportChart(machine: AnyStateMachine): Chart {
  const states: ChartState[] = [];
  const transitions: ChartTransition[] = [];
  const visit = (node: AnyStateNode) => {
    states.push({
      id: node.id,
      key: node.key,
      parent: node.parent ? node.parent.id : null,
      initial: node.initial?.target?.[0]?.id ?? null,
      description: node.description ?? null,
      children: Object.values(node.states).map((c) => c.id),
    });
    for (const [event, defs] of node.transitions) {
      defs.forEach((d, order) =>
        transitions.push({ source: node.id, event, targets: (d.target ?? []).map((n) => n.id), guard: guardName(d.guard), order }),
      );
    }
    Object.values(node.states).forEach(visit);
  };
  visit(machine.root);
  return { id: machine.id, states, transitions };
}

const mid = (id: string) => id.replace(/[^A-Za-z0-9_]/g, '_');

/**
 * Mermaid stateDiagram-v2. Handlers on the root apply to every state: they are drawn through one
 * choice node, with edges labelled by their order and guard.
 */
export function chartToMermaid(chart: Chart): string {
  const root = chart.states.find((s) => s.parent === null)!;
  const lines = ['stateDiagram-v2'];
  const byParent = new Map<string, ChartState[]>();
  for (const s of chart.states) if (s.parent) byParent.set(s.parent, [...(byParent.get(s.parent) ?? []), s]);
  const emit = (s: ChartState, indent: string) => {
    const kids = byParent.get(s.id) ?? [];
    if (kids.length === 0) {
      lines.push(`${indent}state "${s.key}" as ${mid(s.id)}`);
      if (s.description) lines.push(`${indent}note right of ${mid(s.id)} : ${s.description.replace(/[:\n]/g, ' ')}`);
      return;
    }
    lines.push(`${indent}state "${s.key}" as ${mid(s.id)} {`);
    if (s.initial) lines.push(`${indent}  [*] --> ${mid(s.initial)}`);
    kids.forEach((k) => emit(k, indent + '  '));
    lines.push(`${indent}}`);
  };
  if (root.initial) lines.push(`  [*] --> ${mid(root.initial)}`);
  (byParent.get(root.id) ?? []).forEach((s) => emit(s, '  '));
  const rootT = chart.transitions.filter((t) => t.source === root.id);
  if (rootT.length) {
    const choice = `${mid(root.id)}_decide`;
    lines.push(`  state ${choice} <<choice>>`);
    for (const s of byParent.get(root.id) ?? []) {
      const ev = [...new Set(rootT.map((t) => t.event))].join(', ');
      lines.push(`  ${mid(s.id)} --> ${choice} : ${ev}`);
    }
    for (const t of rootT) {
      const label = `${t.order + 1}. ${t.guard ? `[${t.guard}]` : '[else]'}`;
      const target = t.targets[0] ? mid(t.targets[0]) : null;
      if (target) lines.push(`  ${choice} --> ${target} : ${label}`);
      else lines.push(`  note right of ${choice} : ${label} stays (actions only)`);
    }
  }
  for (const t of chart.transitions.filter((t) => t.source !== root.id)) {
    const target = t.targets[0] ? mid(t.targets[0]) : mid(t.source);
    lines.push(`  ${mid(t.source)} --> ${target} : ${t.event}${t.guard ? ` [${t.guard}]` : ''}`);
  }
  return lines.join('\n') + '\n';
}
