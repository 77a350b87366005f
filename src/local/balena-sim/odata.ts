import { type ODataBinds, parse } from '@balena/odata-parser';
import { notImplemented, SimHttpError } from './http';
import { isResourceName, type ResourceName, type Row, SCHEMA } from './schema';
import type { DataScope } from './store';

/** The query options the evaluator understands, still in the parser's tree form. */
export interface QueryOptions {
  $filter?: unknown;
  $select?: unknown;
  $expand?: unknown;
  $orderby?: unknown;
  $top?: unknown;
  $skip?: unknown;
}

/** A parsed `/v7` URL: `resource`, `resource(key)` or `resource(field=value)`, with options. */
export interface ODataRequest {
  resource: ResourceName;
  /** Field -> value that the keyed row must have (`id` for a numeric key). */
  key?: Record<string, unknown>;
  options: QueryOptions;
  binds: ODataBinds;
}

const KNOWN_OPTIONS = new Set(['$filter', '$select', '$expand', '$orderby', '$top', '$skip']);

type Obj = Record<string, unknown>;
const isObj = (value: unknown): value is Obj =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Parses a path+query with the `/v7` prefix already stripped. The parser
 * decodes percent-encoding itself, so the raw URL goes in: decoding first
 * would turn an encoded `&` or `'` inside a string literal into syntax.
 */
export function parseODataUrl(pathAndQuery: string): ODataRequest {
  let parsed: { tree: unknown; binds: ODataBinds };
  try {
    parsed = parse(pathAndQuery, { startRule: 'ProcessRule', rule: 'OData' });
  } catch (error: unknown) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new SimHttpError(400, `Malformed OData URL ${pathAndQuery}: ${reason}`);
  }
  const { tree, binds } = parsed;
  if (!isObj(tree) || typeof tree.resource !== 'string') {
    throw new SimHttpError(400, `No resource in ${pathAndQuery}`);
  }
  if (!isResourceName(tree.resource)) throw notImplemented(`the resource "${tree.resource}"`);
  if (tree.property !== undefined) throw notImplemented('navigating to a property in the URL path');
  if (tree.link !== undefined) throw notImplemented('$links');
  if (tree.count !== undefined) throw notImplemented('$count');
  const options = checkOptions(tree.options);
  const request: ODataRequest = { resource: tree.resource, options, binds };
  if (tree.key !== undefined) request.key = parseKey(tree.resource, tree.key, binds);
  return request;
}

function parseKey(
  resource: ResourceName,
  key: unknown,
  binds: ODataBinds,
): Record<string, unknown> {
  if (!isObj(key)) throw new SimHttpError(400, 'Malformed key');
  if ('bind' in key) return { id: bindValue(binds, key) };
  const result: Record<string, unknown> = {};
  for (const [field, ref] of Object.entries(key)) {
    if (!isField(resource, field)) throw unknownProperty(resource, field);
    result[field] = bindValue(binds, ref);
  }
  return result;
}

function checkOptions(options: unknown): QueryOptions {
  if (options === undefined) return {};
  if (!isObj(options)) throw new SimHttpError(400, 'Malformed query options');
  for (const name of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(name)) throw notImplemented(`the query option "${name}"`);
  }
  return options as QueryOptions;
}

/** The rows the URL addresses (key and $filter applied), as seen through `scope`. */
export function selectRows(scope: DataScope, request: ODataRequest): Row[] {
  const { resource, key, options, binds } = request;
  let rows = scope.rows(resource);
  if (key) rows = rows.filter((row) => Object.entries(key).every(([f, v]) => row[f] === v));
  return filterRows(new Evaluator(scope, binds), resource, rows, options.$filter);
}

/** Applies $orderby/$skip/$top, then shapes each row by $select and $expand. */
export function presentRows(scope: DataScope, request: ODataRequest, rows: Row[]): Obj[] {
  return new Evaluator(scope, request.binds).present(request.resource, rows, request.options);
}

function filterRows(ev: Evaluator, resource: ResourceName, rows: Row[], filter: unknown): Row[] {
  if (filter === undefined) return rows;
  return rows.filter((row) => ev.eval(filter, { resource, row, aliases: new Map() }) === true);
}

interface Bound {
  resource: ResourceName;
  row: Row;
}
interface RowContext extends Bound {
  aliases: ReadonlyMap<string, Bound>;
}

const COMPARISONS = new Set(['eq', 'ne', 'gt', 'ge', 'lt', 'le']);

class Evaluator {
  constructor(
    private readonly scope: DataScope,
    private readonly binds: ODataBinds,
  ) {}

  eval(node: unknown, ctx: RowContext): unknown {
    if (node === null) return null;
    if (Array.isArray(node)) return this.evalOperator(node, ctx);
    if (isObj(node) && 'bind' in node) return bindValue(this.binds, node);
    if (isObj(node) && typeof node.name === 'string') return this.evalPath(node, ctx);
    throw notImplemented(`the filter expression ${JSON.stringify(node)}`);
  }

  present(resource: ResourceName, input: Row[], options: QueryOptions): Obj[] {
    let rows = this.order(resource, input, options.$orderby);
    const skip = options.$skip === undefined ? 0 : this.count(options.$skip, '$skip');
    const top = options.$top === undefined ? rows.length : this.count(options.$top, '$top');
    rows = rows.slice(skip, skip + top);
    const names = selectedNames(resource, options.$select);
    const expands = expandList(options.$expand);
    return rows.map((row) => {
      const out: Obj = {};
      for (const name of names) {
        if (SCHEMA[resource].fields.includes(name)) out[name] = row[name] ?? null;
        else out[name] = row[name] == null ? null : { __id: row[name] };
      }
      for (const expand of expands) out[expand.name] = this.expand(resource, row, expand);
      return out;
    });
  }

  private evalOperator(node: unknown[], ctx: RowContext): unknown {
    const [op, ...args] = node;
    if (op === 'and') return args.every((arg) => this.eval(arg, ctx) === true);
    if (op === 'or') return args.some((arg) => this.eval(arg, ctx) === true);
    if (op === 'not') return this.eval(args[0], ctx) !== true;
    if (typeof op === 'string' && COMPARISONS.has(op)) {
      return compare(op, this.eval(args[0], ctx), this.eval(args[1], ctx));
    }
    if (op === 'eqany') {
      const value = this.eval(args[0], ctx);
      const list = this.eval(args[1], ctx);
      if (!Array.isArray(list)) throw new SimHttpError(400, '"in" needs a list');
      return list.some((item) => compare('eq', value, item));
    }
    if (op === 'call' && isObj(args[0])) {
      const { method, args: callArgs } = args[0];
      // device.get(<short uuid>) filters with startswith(uuid, '<prefix>').
      if (method === 'startswith' && Array.isArray(callArgs) && callArgs.length === 2) {
        const [text, prefix] = callArgs.map((arg) => this.eval(arg, ctx));
        return typeof text === 'string' && typeof prefix === 'string' && text.startsWith(prefix);
      }
      throw notImplemented(`the filter function ${String(method)}()`);
    }
    throw notImplemented(`the filter operator "${String(op)}"`);
  }

  /** `name`, `alias/name`, `link/name`, and `nav/any(x: ...)` / `nav/all(x: ...)`. */
  private evalPath(node: Obj, ctx: RowContext): unknown {
    let segment: Obj = node;
    let { resource, row }: Bound = ctx;
    const alias = ctx.aliases.get(String(node.name));
    if (alias) {
      if (!isObj(node.property))
        throw notImplemented(`using the lambda variable ${node.name} as a value`);
      ({ resource, row } = alias);
      segment = node.property;
    }
    for (;;) {
      const name = String(segment.name);
      const schema = SCHEMA[resource];
      if (isObj(segment.lambda)) return this.evalLambda(resource, row, name, segment.lambda, ctx);
      const linked = schema.links[name];
      if (isObj(segment.property)) {
        if (!linked) {
          if (schema.reverse[name]) throw notImplemented(`${name}/... without any()/all()`);
          throw unknownProperty(resource, name);
        }
        const target = this.scope.row(linked, row[name]);
        if (!target) return null;
        resource = linked;
        row = target;
        segment = segment.property;
        continue;
      }
      if (schema.fields.includes(name) || linked) return row[name] ?? null;
      if (schema.reverse[name]) throw notImplemented(`comparing the collection ${name}`);
      throw unknownProperty(resource, name);
    }
  }

  private evalLambda(
    resource: ResourceName,
    row: Row,
    name: string,
    lambda: Obj,
    ctx: RowContext,
  ): boolean {
    const { method, identifier, expression } = lambda;
    if (method !== 'any' && method !== 'all') throw notImplemented(`the lambda ${String(method)}`);
    const related = this.related(resource, row, name);
    const test = (target: Bound): boolean => {
      const aliases = new Map(ctx.aliases).set(String(identifier), target);
      return this.eval(expression, { ...ctx, aliases }) === true;
    };
    return method === 'any' ? related.some(test) : related.every(test);
  }

  /** The rows a navigation property leads to (0 or 1 for a link). */
  private related(resource: ResourceName, row: Row, name: string): Bound[] {
    const schema = SCHEMA[resource];
    const linked = schema.links[name];
    if (linked) {
      const target = this.scope.row(linked, row[name]);
      return target ? [{ resource: linked, row: target }] : [];
    }
    const reverse = schema.reverse[name];
    if (!reverse) throw unknownProperty(resource, name);
    return this.scope
      .rows(reverse.resource)
      .filter((other) => other[reverse.via] === row.id)
      .map((other) => ({ resource: reverse.resource, row: other }));
  }

  private expand(resource: ResourceName, row: Row, expand: Obj & { name: string }): Obj[] {
    const { name } = expand;
    if (expand.property !== undefined) throw notImplemented(`nested $expand paths (${name}/...)`);
    if (expand.count !== undefined) throw notImplemented(`$expand with $count (${name})`);
    const related = this.related(resource, row, name);
    const target = SCHEMA[resource].links[name] ?? SCHEMA[resource].reverse[name]?.resource;
    if (!target) throw unknownProperty(resource, name);
    const options = checkOptions(expand.options);
    const rows = filterRows(
      this,
      target,
      related.map((bound) => bound.row),
      options.$filter,
    );
    return this.present(target, rows, options);
  }

  private order(resource: ResourceName, rows: Row[], orderby: unknown): Row[] {
    const keys: { node: Obj; desc: boolean }[] = [];
    if (orderby !== undefined) {
      if (!isObj(orderby) || !Array.isArray(orderby.properties)) {
        throw new SimHttpError(400, 'Malformed $orderby');
      }
      for (const property of orderby.properties) {
        if (!isObj(property)) throw new SimHttpError(400, 'Malformed $orderby');
        keys.push({ node: property, desc: property.order === 'desc' });
      }
    }
    const sortKey = (row: Row, node: Obj): unknown =>
      this.evalPath(node, { resource, row, aliases: new Map() });
    return [...rows].sort((a, b) => {
      for (const { node, desc } of keys) {
        const diff = orderValues(sortKey(a, node), sortKey(b, node));
        if (diff !== 0) return desc ? -diff : diff;
      }
      return a.id - b.id;
    });
  }

  private count(node: unknown, option: string): number {
    const value = isObj(node) && 'bind' in node ? bindValue(this.binds, node) : node;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
      throw new SimHttpError(400, `${option} must be a non-negative integer`);
    }
    return value;
  }
}

function bindValue(binds: ODataBinds, ref: unknown): unknown {
  if (!isObj(ref) || (typeof ref.bind !== 'number' && typeof ref.bind !== 'string')) {
    throw new SimHttpError(400, 'Malformed literal');
  }
  const bind = typeof ref.bind === 'number' ? binds[ref.bind] : binds[ref.bind as `@${string}`];
  if (!bind) throw new SimHttpError(400, `Unknown parameter ${String(ref.bind)}`);
  return literal(bind);
}

function literal([type, value]: [string, unknown]): unknown {
  switch (type) {
    case 'Real':
    case 'Integer':
    case 'Boolean':
    case 'Text':
      return value;
    case 'Date':
    case 'Date Time':
      // Stored timestamps are ISO strings, which compare in time order.
      return new Date(value as number | string).toISOString();
    case 'List':
      return (value as [string, unknown][]).map(literal);
    default:
      throw notImplemented(`${type} literals`);
  }
}

function compare(op: string, a: unknown, b: unknown): boolean {
  if (op === 'eq') return a === b;
  if (op === 'ne') return a !== b;
  if (a === null || b === null || typeof a !== typeof b) return false;
  const diff = orderValues(a, b);
  if (op === 'gt') return diff > 0;
  if (op === 'ge') return diff >= 0;
  if (op === 'lt') return diff < 0;
  return diff <= 0;
}

/** Total order for sorting; nulls sort last, as in PostgreSQL's ascending order. */
function orderValues(a: unknown, b: unknown): number {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a) < String(b) ? -1 : 1;
}

function selectedNames(resource: ResourceName, select: unknown): string[] {
  const schema = SCHEMA[resource];
  if (select === undefined || select === '*')
    return [...schema.fields, ...Object.keys(schema.links)];
  if (!isObj(select) || !Array.isArray(select.properties))
    throw new SimHttpError(400, 'Malformed $select');
  return select.properties.map((property: unknown) => {
    if (!isObj(property) || typeof property.name !== 'string')
      throw new SimHttpError(400, 'Malformed $select');
    if (property.property !== undefined)
      throw notImplemented(`$select of a path (${property.name}/...)`);
    if (!isField(resource, property.name)) {
      if (schema.reverse[property.name]) {
        throw new SimHttpError(400, `Cannot $select the collection ${property.name}; use $expand`);
      }
      throw unknownProperty(resource, property.name);
    }
    return property.name;
  });
}

function expandList(expand: unknown): (Obj & { name: string })[] {
  if (expand === undefined) return [];
  if (!isObj(expand) || !Array.isArray(expand.properties))
    throw new SimHttpError(400, 'Malformed $expand');
  return expand.properties.map((property: unknown) => {
    if (!isObj(property) || typeof property.name !== 'string')
      throw new SimHttpError(400, 'Malformed $expand');
    return { ...property, name: property.name };
  });
}

function isField(resource: ResourceName, name: string): boolean {
  return SCHEMA[resource].fields.includes(name) || Object.hasOwn(SCHEMA[resource].links, name);
}

function unknownProperty(resource: ResourceName, name: string): SimHttpError {
  return new SimHttpError(400, `Unknown property "${name}" of resource "${resource}"`);
}
