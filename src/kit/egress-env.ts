/**
 * The environment that points a sandbox's programs at its egress proxy, and the port the
 * proxy's bridge listens on inside the sandbox.
 */

/** The port, on the sandbox's own loopback, where the egress proxy's bridge listens. */
export const egressProxyPort = 3128;

/**
 * The proxy variables (upper and lower case: curl reads only the lower-case `http_proxy`, most
 * others either), `ALL_PROXY` as SOCKS5 with remote name resolution for programs that speak
 * SOCKS, and `NO_PROXY` for the sandbox's own loopback.
 */
export declare function egressProxyEnv(port?: number): Record<string, string>;
