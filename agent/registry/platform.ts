/** An OCI platform: `os`/`architecture` in Go's GOOS/GOARCH words, `variant` e.g. `v7` for arm. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

const nodeOsToOci: Record<string, string> = {
  win32: 'windows',
  sunos: 'solaris',
};

/**
 * The OCI platform of a host from Node's words for it. Pure: the caller reads `process.platform`,
 * `process.arch` and, on 32-bit arm, `process.config.variables.arm_version`, and passes them in.
 */
export function ociPlatform(nodePlatform: string, nodeArch: string, armVersion?: string | number): Platform {
  const os = nodeOsToOci[nodePlatform] ?? nodePlatform;
  switch (nodeArch) {
    case 'x64':
      return { os, architecture: 'amd64' };
    case 'ia32':
      return { os, architecture: '386' };
    case 'arm64':
      return { os, architecture: 'arm64' };
    case 'arm': {
      const version = String(armVersion ?? '7').replace(/^v/, '');
      return { os, architecture: 'arm', variant: `v${/^[5-8]$/.test(version) ? version : '7'}` };
    }
    case 'ppc64':
      // Node supports only little-endian ppc64 on Linux; AIX is big-endian.
      return { os, architecture: nodePlatform === 'linux' ? 'ppc64le' : 'ppc64' };
    case 'mipsel':
      return { os, architecture: 'mipsle' };
    case 'mips64el':
      return { os, architecture: 'mips64le' };
    default:
      // s390x, riscv64, loong64, mips... are spelled alike in Node and Go.
      return { os, architecture: nodeArch };
  }
}

const architectureAliases: Record<string, Platform['architecture']> = {
  x86_64: 'amd64',
  'x86-64': 'amd64',
  aarch64: 'arm64',
  i386: '386',
  armhf: 'arm',
  armel: 'arm',
};

/** Normalises the way containerd does: arm without variant is v7; arm64 v8 and amd64 v1 are the plain architecture. */
export function normalizePlatform(platform: Platform): Platform {
  const os = platform.os.toLowerCase();
  const rawArch = platform.architecture.toLowerCase();
  const architecture = architectureAliases[rawArch] ?? rawArch;
  let variant = platform.variant?.toLowerCase() || undefined;
  if (rawArch === 'armhf' && variant === undefined) variant = 'v7';
  if (rawArch === 'armel' && variant === undefined) variant = 'v6';
  if (architecture === 'arm' && variant === undefined) variant = 'v7';
  if (architecture === 'arm64' && (variant === 'v8' || variant === '8')) variant = undefined;
  if (architecture === 'amd64' && variant === 'v1') variant = undefined;
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

export function formatPlatform(platform: Platform): string {
  return `${platform.os}/${platform.architecture}${platform.variant ? `/${platform.variant}` : ''}`;
}

/** The variants a host can run, best first: an arm v7 host also runs v6 and v5, an amd64 v3 host v2 and v1. */
function compatibleVariants(host: Platform): Array<string | undefined> {
  const version = /^v(\d+)$/.exec(host.variant ?? '')?.[1];
  if (host.architecture === 'arm' && version !== undefined) {
    const variants: string[] = [];
    for (let v = Number(version); v >= 5; v -= 1) variants.push(`v${v}`);
    return variants;
  }
  if (host.architecture === 'amd64' && version !== undefined) {
    const variants: Array<string | undefined> = [];
    for (let v = Number(version); v >= 2; v -= 1) variants.push(`v${v}`);
    return [...variants, undefined];
  }
  return [host.variant];
}

/**
 * Index of the entry this host should run among an index's platforms, or -1. Exact matches first,
 * then older variants of the same architecture (never another architecture); the first entry wins
 * a tie. Entries without a platform are skipped.
 */
export function matchPlatform(host: Platform, candidates: Array<Platform | undefined>): number {
  const wanted = normalizePlatform(host);
  const variants = compatibleVariants(wanted);
  let best = -1;
  let bestRank = Number.POSITIVE_INFINITY;
  candidates.forEach((candidate, index) => {
    if (candidate === undefined) return;
    const platform = normalizePlatform(candidate);
    if (platform.os !== wanted.os || platform.architecture !== wanted.architecture) return;
    const rank = variants.indexOf(platform.variant);
    if (rank !== -1 && rank < bestRank) {
      best = index;
      bestRank = rank;
    }
  });
  return best;
}
