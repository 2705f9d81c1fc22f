/**
 * The environment that points a sandbox's programs at its egress proxy, and the port the
 * proxy's bridge listens on inside the sandbox.
 */
import type { SandboxWarning } from '../spec/events.js';

/** The port, on the sandbox's own loopback, where the egress proxy's bridge listens. */
export const egressProxyPort = 3128;

/**
 * The proxy variables (upper and lower case: curl reads only the lower-case `http_proxy`, most
 * others either), `ALL_PROXY` as SOCKS5 with remote name resolution for programs that speak
 * SOCKS, `NO_PROXY` for the sandbox's own loopback, and `NODE_USE_ENV_PROXY=1`, which makes
 * Node's own `fetch` and `http` honour the variables from Node 24 (earlier Nodes ignore it: their
 * `fetch` reaches nothing, which fails closed).
 *
 * @param port the bridge's port inside the sandbox. @default egressProxyPort
 */
export function egressProxyEnv(port: number = egressProxyPort): Record<string, string> {
  const http = `http://127.0.0.1:${port}`;
  // socks5h: the proxy resolves names (the sandbox has no DNS), so the name reaches the policy.
  const socks = `socks5h://127.0.0.1:${port}`;
  const noProxy = 'localhost,127.0.0.1,::1';
  return {
    HTTP_PROXY: http,
    HTTPS_PROXY: http,
    ALL_PROXY: socks,
    NO_PROXY: noProxy,
    http_proxy: http,
    https_proxy: http,
    all_proxy: socks,
    no_proxy: noProxy,
    NODE_USE_ENV_PROXY: '1',
  };
}

/**
 * `from` (a create's `env` or `secrets`) without the variables the egress proxy sets, in any
 * case: the sandbox has no route to another proxy, so such a value could only break its egress.
 * Each one dropped is an `unsupported-setting` warning named `<setting>.<NAME>` (never its value:
 * it may be a secret). Shared by the adapters whose allowlists go through the proxy.
 */
export function withoutProxyVariables(
  from: Readonly<Record<string, string>> | undefined,
  setting: 'env' | 'secrets',
  warnings: SandboxWarning[],
): Record<string, string> | undefined {
  if (!from) return undefined;
  const proxyNames = new Set(Object.keys(egressProxyEnv()).map((name) => name.toLowerCase()));
  return Object.fromEntries(
    Object.entries(from).filter(([name]) => {
      if (!proxyNames.has(name.toLowerCase())) return true;
      warnings.push({
        type: 'unsupported-setting',
        setting: `${setting}.${name}`,
        details: `the network allowlist's egress proxy sets ${name}; the sandbox has no route to another proxy`,
      });
      return false;
    }),
  );
}

/** The `network` warning of a sandbox whose allowlist is enforced through the egress proxy. */
export function egressProxyWarning(): SandboxWarning {
  return {
    type: 'unsupported-setting',
    setting: 'network',
    details:
      `the allowlist is enforced by an egress proxy at http://127.0.0.1:${egressProxyPort} (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY ` +
      'are set); programs that ignore the proxy variables reach nothing, and the sandbox resolves no names itself',
  };
}
