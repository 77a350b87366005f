import type { ODataRequest } from './odata';
import type { SimStore } from './store';
import type { FaultRule } from './types';

/** What a request is about, for matching fault rules. */
export interface FaultSubject {
  method: string;
  /** Decoded path and query. */
  path: string;
  /** The parsed `/v7` URL, when it parsed. */
  odata?: ODataRequest;
  /** The JSON body, when there was one. */
  body?: unknown;
}

/** What to do to a request: wait `latencyMs`, then answer `status`, reset, or serve it. */
export interface FaultOutcome {
  latencyMs: number;
  end?: { kind: 'status'; status: number; retryAfterSeconds?: number } | { kind: 'reset' };
}

interface ActiveRule {
  rule: FaultRule;
  remaining: number;
}

/** The injected fault rules, consumed as requests match them. */
export class FaultInjector {
  private rules: ActiveRule[] = [];

  constructor(
    private readonly store: SimStore,
    private readonly random: () => number = Math.random,
  ) {}

  add(rule: FaultRule): void {
    this.rules.push({ rule, remaining: rule.count ?? Number.POSITIVE_INFINITY });
  }

  clear(): void {
    this.rules = [];
  }

  /**
   * Latency rules add up and let the request through; the first matching
   * status/reset rule ends it. Rules whose `fraction` roll fails are not consumed.
   */
  decide(subject: FaultSubject): FaultOutcome {
    const outcome: FaultOutcome = { latencyMs: 0 };
    for (const active of this.rules) {
      if (active.remaining <= 0 || !this.matches(active.rule, subject)) continue;
      if (active.rule.kind !== 'latency' && outcome.end) continue;
      if (active.rule.fraction !== undefined && this.random() >= active.rule.fraction) continue;
      active.remaining--;
      const { rule } = active;
      if (rule.kind === 'latency') outcome.latencyMs += rule.latencyMs ?? 0;
      else if (rule.kind === 'reset') outcome.end = { kind: 'reset' };
      else {
        outcome.end = {
          kind: 'status',
          status: rule.status ?? 503,
          retryAfterSeconds: rule.retryAfterSeconds,
        };
      }
    }
    this.rules = this.rules.filter((active) => active.remaining > 0);
    return outcome;
  }

  private matches(rule: FaultRule, subject: FaultSubject): boolean {
    if (rule.method && rule.method.toUpperCase() !== subject.method) return false;
    if (rule.route !== undefined && !subject.path.includes(rule.route)) return false;
    if (rule.deviceUuids && !rule.deviceUuids.some((uuid) => this.concerns(subject, uuid))) {
      return false;
    }
    return true;
  }

  private concerns(subject: FaultSubject, uuid: string): boolean {
    if (subject.path.includes(uuid)) return true;
    const device = this.store.findBy('device', 'uuid', uuid);
    if (!device) return false;
    const installs = new Set(this.store.installsOf(device.id).map((si) => si.id));
    const refersToDevice = (field: string, value: unknown, resource?: string): boolean =>
      ((field === 'device' || (field === 'id' && resource === 'device')) && value === device.id) ||
      ((field === 'service_install' || (field === 'id' && resource === 'service_install')) &&
        typeof value === 'number' &&
        installs.has(value));
    const { odata, body } = subject;
    if (odata) {
      for (const [field, value] of Object.entries(odata.key ?? {})) {
        if (refersToDevice(field, value, odata.resource)) return true;
      }
      for (const [path, value] of comparedValues(odata.options.$filter, odata.binds)) {
        const field = path[path.length - 1] ?? '';
        // A bare `id` is the queried resource's own id; `x/id` could be anything.
        if (refersToDevice(field, value, path.length === 1 ? odata.resource : undefined))
          return true;
      }
    }
    if (typeof body === 'object' && body !== null) {
      for (const [field, value] of Object.entries(body))
        if (refersToDevice(field, value)) return true;
    }
    return false;
  }
}

/**
 * `(property path, literal)` pairs from every `eq`/`in` in a parsed $filter
 * (`si/device eq 5` gives `[['si', 'device'], 5]`). A heuristic for fault
 * scoping only, never used for query results.
 */
function comparedValues(filter: unknown, binds: readonly unknown[]): [string[], unknown][] {
  const found: [string[], unknown][] = [];
  const literal = (node: unknown): unknown[] => {
    if (typeof node !== 'object' || node === null || !('bind' in node)) return [];
    const bind = binds[node.bind as number];
    if (!Array.isArray(bind)) return [];
    const [type, value] = bind as [string, unknown];
    return type === 'List' ? (value as [string, unknown][]).map(([, v]) => v) : [value];
  };
  const pathOf = (node: unknown): string[] => {
    const names: string[] = [];
    let current = node;
    while (typeof current === 'object' && current !== null && 'name' in current) {
      names.push(String(current.name));
      current = 'property' in current ? current.property : undefined;
    }
    return names;
  };
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) {
      const [op, left, right] = node;
      const path = pathOf(left);
      if ((op === 'eq' || op === 'eqany') && path.length > 0) {
        for (const value of literal(right)) found.push([path, value]);
      }
      for (const child of node) walk(child);
    } else if (typeof node === 'object' && node !== null) {
      for (const child of Object.values(node)) walk(child);
    }
  };
  walk(filter);
  return found;
}
