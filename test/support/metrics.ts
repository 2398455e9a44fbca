// Reads a process's Prometheus /metrics, as a scraper would, for assertions on what it exported.

/** The value of `name` in the series whose labels include `labels`, or undefined if none. */
export type MetricLookup = (name: string, labels?: Record<string, string>) => number | undefined;

export async function scrapeMetrics(baseUrl: string): Promise<MetricLookup> {
  const response = await fetch(`${baseUrl}/metrics`);
  if (response.status !== 200) throw new Error(`GET ${baseUrl}/metrics answered ${response.status}`);
  const series = (await response.text()).split('\n').flatMap((line) => {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) return [];
    const labels = new Map([...(match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1] ?? '', m[2] ?? '']));
    return [{ name: match[1], labels, value: Number(match[3]) }];
  });
  return (name, labels = {}) => series.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels.get(k) === v))?.value;
}
