/**
 * Label and field selectors as the API server parses them (`labelSelector=`, `fieldSelector=`).
 * Label grammar: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, joined by
 * commas. Field grammar: `path=v`, `path==v`, `path!=v` over the fields each resource supports
 * (pods: `metadata.name`, `metadata.namespace`, `status.phase`, `spec.nodeName`,
 * `spec.restartPolicy`, `status.podIP`); an unsupported field is a 400, as on a cluster.
 */
import { KubeStatusError } from './k8s-status.js';

type LabelRequirement =
  | { op: 'exists' | 'notexists'; key: string }
  | { op: 'in' | 'notin'; key: string; values: string[] }
  | { op: 'eq' | 'neq'; key: string; value: string };

export type LabelSelector = (labels: Readonly<Record<string, string>> | undefined) => boolean;

/** Splits on commas that are not inside parentheses. */
function splitTerms(text: string): string[] {
  const terms: string[] = [];
  let depth = 0;
  let current = '';
  for (const char of text) {
    if (char === '(') depth++;
    if (char === ')') depth--;
    if (char === ',' && depth === 0) {
      terms.push(current);
      current = '';
    } else current += char;
  }
  terms.push(current);
  return terms.map((term) => term.trim()).filter((term) => term !== '');
}

const keyPattern = /^([A-Za-z0-9][-A-Za-z0-9_.]*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const valuePattern = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function checkKey(key: string, selector: string): string {
  if (!keyPattern.test(key)) throw badSelector(selector, `invalid label key "${key}"`);
  return key;
}

function checkValue(value: string, selector: string): string {
  if (value.length > 63 || !valuePattern.test(value)) throw badSelector(selector, `invalid label value: "${value}"`);
  return value;
}

function badSelector(selector: string, why: string): KubeStatusError {
  return new KubeStatusError('BadRequest', `unable to parse requirement: ${why} (selector "${selector}")`);
}

function parseLabelTerm(term: string, selector: string): LabelRequirement {
  const setMatch = /^([^\s!=(),]+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(term);
  if (setMatch) {
    const values = setMatch[3]!
      .split(',')
      .map((value) => value.trim())
      .filter((value) => value !== '')
      .map((value) => checkValue(value, selector));
    return { op: setMatch[2] as 'in' | 'notin', key: checkKey(setMatch[1]!, selector), values };
  }
  const opMatch = /^([^\s!=]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
  if (opMatch) {
    const key = checkKey(opMatch[1]!, selector);
    const value = checkValue(opMatch[3]!.trim(), selector);
    return opMatch[2] === '!=' ? { op: 'neq', key, value } : { op: 'eq', key, value };
  }
  if (term.startsWith('!')) return { op: 'notexists', key: checkKey(term.slice(1).trim(), selector) };
  return { op: 'exists', key: checkKey(term, selector) };
}

function matchesRequirement(requirement: LabelRequirement, labels: Readonly<Record<string, string>>): boolean {
  const has = Object.hasOwn(labels, requirement.key);
  const value = labels[requirement.key];
  switch (requirement.op) {
    case 'exists':
      return has;
    case 'notexists':
      return !has;
    case 'eq':
      return has && value === requirement.value;
    case 'neq':
      return !has || value !== requirement.value;
    case 'in':
      return has && requirement.values.includes(value!);
    case 'notin':
      return !has || !requirement.values.includes(value!);
  }
}

/** Parses a `labelSelector`; an empty or absent one matches everything. Throws a 400 `Status` for bad syntax. */
export function parseLabelSelector(selector: string | null | undefined): LabelSelector {
  if (!selector) return () => true;
  const requirements = splitTerms(selector).map((term) => parseLabelTerm(term, selector));
  return (labels) => requirements.every((requirement) => matchesRequirement(requirement, labels ?? {}));
}

/** A `metav1.LabelSelector` object (`matchLabels`, `matchExpressions`), as NetworkPolicy's `podSelector` holds it. */
export interface LabelSelectorObject {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }>;
}

export function matchesSelectorObject(
  selector: LabelSelectorObject | undefined,
  labels: Readonly<Record<string, string>> | undefined,
): boolean {
  const own = labels ?? {};
  for (const [key, value] of Object.entries(selector?.matchLabels ?? {})) if (own[key] !== value) return false;
  for (const expression of selector?.matchExpressions ?? []) {
    const has = Object.hasOwn(own, expression.key);
    const values = expression.values ?? [];
    const ok =
      expression.operator === 'In'
        ? has && values.includes(own[expression.key]!)
        : expression.operator === 'NotIn'
          ? !has || !values.includes(own[expression.key]!)
          : expression.operator === 'Exists'
            ? has
            : !has;
    if (!ok) return false;
  }
  return true;
}

export type FieldSelector = (object: Record<string, unknown>) => boolean;

function fieldValue(object: Record<string, unknown>, path: string): string {
  let current: unknown = object;
  for (const part of path.split('.'))
    current = current && typeof current === 'object' ? (current as Record<string, unknown>)[part] : undefined;
  return current === undefined || current === null ? '' : String(current);
}

/**
 * Parses a `fieldSelector` for a resource whose selectable fields are `fields` (`metadata.name`
 * and `metadata.namespace` are always selectable). An unknown field is a 400 naming it, as the API
 * server answers `field label not supported: x`.
 */
export function parseFieldSelector(selector: string | null | undefined, fields: readonly string[]): FieldSelector {
  if (!selector) return () => true;
  const allowed = new Set(['metadata.name', 'metadata.namespace', ...fields]);
  const terms = splitTerms(selector).map((term) => {
    const match = /^([^\s!=]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (!match) throw new KubeStatusError('BadRequest', `invalid selector: '${selector}'; can't understand '${term}'`);
    const field = match[1]!;
    if (!allowed.has(field)) throw new KubeStatusError('BadRequest', `field label not supported: ${field}`);
    return { field, negate: match[2] === '!=', value: match[3]!.trim() };
  });
  return (object) => terms.every((term) => (fieldValue(object, term.field) === term.value) !== term.negate);
}
