/**
 * Create-time checks of a sandbox definition, the way Modal's server does them: a value Modal
 * does not know is INVALID_ARGUMENT naming the field, and a field the emulator cannot honour is
 * FAILED_PRECONDITION saying so, never silently ignored.
 *
 * Valid sets: the JS SDK carries `cloud` and `regions` as free strings and checks neither, so
 * the sets below are the emulator's reading of Modal's docs (the region selection guide and the
 * CloudProvider enum bundled in the SDK):
 * - cloud: `aws`, `gcp`, `oci`, `auto` (any case; empty is Modal's choice);
 * - regions: a broad region (`us`, `eu`, `ap`, `uk`, `ca`, `jp`, `au`, `sa`, `me`, `mx`, `af`,
 *   and `us-east`, `us-central`, `us-west`, `eu-west`, `eu-north`, `ap-northeast`,
 *   `ap-southeast`, `ap-south`), or a name shaped like an AWS (`us-east-1`), GCP
 *   (`us-east4`, `europe-west4`) or OCI (`us-ashburn-1`) region. Modal's list of specific
 *   regions changes with its clouds; a well-shaped name Modal does not run in passes here.
 */
import * as grpc from '@grpc/grpc-js';
import { RpcError, type Json } from './modal-rpc.js';

const clouds = new Set(['aws', 'gcp', 'oci', 'auto']);
const broadRegions = new Set([
  'us',
  'eu',
  'ap',
  'uk',
  'ca',
  'jp',
  'au',
  'sa',
  'me',
  'mx',
  'af',
  'us-east',
  'us-central',
  'us-west',
  'eu-west',
  'eu-north',
  'ap-northeast',
  'ap-southeast',
  'ap-south',
]);
const regionShapes = [
  // AWS: us-east-1, eu-central-2, us-gov-west-1
  /^[a-z]{2}(-gov)?-(north|south|east|west|central|northeast|northwest|southeast|southwest)-\d$/,
  // GCP: us-east4, europe-west4, asia-southeast1, northamerica-northeast1
  /^[a-z]+-(north|south|east|west|central|northeast|northwest|southeast|southwest)\d$/,
  // OCI: us-ashburn-1, eu-frankfurt-1
  /^[a-z]{2}-[a-z]+-\d$/,
];

/** The Modal cloud values the emulator accepts, for error messages and docs. */
export const validClouds: readonly string[] = [...clouds];

/** Throws an RpcError for a definition Modal would refuse or the emulator cannot honour. */
export function validateSandboxDefinition(definition: Json): void {
  const cloud = String(definition.cloudProviderStr ?? '');
  if (cloud !== '' && !clouds.has(cloud.toLowerCase()))
    invalid(`cloud: unknown cloud provider "${cloud}" (valid: ${validClouds.join(', ')})`);
  if (definition.cloudProvider) invalid('cloud_provider: the enum field is deprecated; pass the cloud by name');
  for (const region of (definition.schedulerPlacement?.regions ?? []) as string[]) {
    if (!broadRegions.has(region) && !regionShapes.some((shape) => shape.test(region)))
      invalid(`regions: unknown region "${region}" (a broad region such as us-east or eu, or a cloud region such as us-east-1)`);
  }
  if (definition.runtime !== undefined && definition.runtime !== '' && definition.runtime !== 'gvisor') {
    if (definition.runtime === 'vm') unsupported('runtime "vm": the emulator runs every sandbox in bubblewrap on this host, never in a VM');
    invalid(`runtime: must be "gvisor" or "vm", got "${definition.runtime}"`);
  }
  const refusals: Array<[boolean, string]> = [
    [(definition.mountIds ?? []).length > 0, 'mounts (mount_ids): the emulator has no Modal mounts'],
    [(definition.s3Mounts ?? []).length > 0, 's3 mounts: the emulator mounts no buckets'],
    [(definition.cloudBucketMounts ?? []).length > 0, 'cloudBucketMounts: the emulator mounts no cloud buckets'],
    [Boolean(definition.i6pnEnabled), 'i6pn: the emulator has no private network between sandboxes'],
    [Boolean(definition.proxyId), 'proxy: the emulator has no Modal proxies'],
    [Boolean(definition.enableSnapshot), 'experimentalEnableSnapshot: the emulator takes no memory snapshots'],
    [Boolean(definition.customDomain), 'customDomain: the emulator serves no custom domains'],
    [Boolean(definition.includeOidcIdentityToken), 'includeOidcIdentityToken: the emulator issues no OIDC identity tokens'],
    [(definition.inboundCidrAllowlist ?? []).length > 0, 'inboundCidrAllowlist: the emulator cannot filter inbound connections'],
    [
      (definition.experimentalOptions ?? []).length + (definition.experimentalOptionsV2 ?? []).length > 0,
      'experimentalOptions: the emulator knows no experimental options',
    ],
    [(definition.experimentalOutboundPolicy ?? []).length > 0, 'experimentalOutboundPolicy: the emulator rewrites no outbound requests'],
  ];
  for (const [refused, message] of refusals) if (refused) unsupported(message);
}

function invalid(message: string): never {
  throw new RpcError(grpc.status.INVALID_ARGUMENT, message);
}

function unsupported(message: string): never {
  throw new RpcError(grpc.status.FAILED_PRECONDITION, `The Modal emulator cannot honour ${message}`);
}
