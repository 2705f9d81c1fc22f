/**
 * For the emulator's own tests (test/emulators/fly-api-*.test.ts): plain `fetch` calls shaped as
 * Fly's docs show them (`${FLY_API_HOSTNAME}/v1/...`, `Authorization: Bearer ${FLY_API_TOKEN}`),
 * answering the status and the parsed body, and a few flows the tests share.
 */
export interface FlyCallAnswer {
  status: number;
  headers: Headers;
  /** Parsed JSON, the text when it is not JSON, or undefined when empty. */
  body: any;
}

export interface FlyTestClient {
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<FlyCallAnswer>;
  /** Creates an app (201 expected) and returns its name. */
  app(name?: string): Promise<string>;
  /** Creates a machine (200 expected) and returns its JSON. */
  machine(app: string, body: Record<string, unknown>): Promise<any>;
  /** Waits for a state (200 expected). */
  waitFor(app: string, id: string, state: string, extra?: string): Promise<void>;
}

let appCounter = 0;

export function flyTestClient(url: string, token: string): FlyTestClient {
  const call: FlyTestClient['call'] = async (method, path, body, headers = {}) => {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    let parsed: unknown = text === '' ? undefined : text;
    try {
      if (text !== '') parsed = JSON.parse(text);
    } catch {
      // Not JSON: keep the text.
    }
    return { status: response.status, headers: response.headers, body: parsed };
  };
  return {
    call,
    async app(name = `test-app-${process.pid}-${++appCounter}`) {
      const answer = await call('POST', '/v1/apps', { app_name: name, org_slug: 'personal' });
      if (answer.status !== 201) throw new Error(`app create answered ${answer.status}: ${JSON.stringify(answer.body)}`);
      return name;
    },
    async machine(app, body) {
      const answer = await call('POST', `/v1/apps/${app}/machines`, body);
      if (answer.status !== 200) throw new Error(`machine create answered ${answer.status}: ${JSON.stringify(answer.body)}`);
      return answer.body;
    },
    async waitFor(app, id, state, extra = '') {
      const answer = await call('GET', `/v1/apps/${app}/machines/${id}/wait?state=${state}&timeout=30${extra}`);
      if (answer.status !== 200) throw new Error(`wait for ${state} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    },
  };
}
