// @peculiar/x509 resolves its algorithm providers through tsyringe, which refuses to load without
// the Reflect metadata API (the `reflect-metadata` package is not a dependency). This supplies the
// three functions tsyringe calls; import it before @peculiar/x509.
const store = new WeakMap<object, Map<unknown, unknown>>();

interface ReflectMetadata {
  defineMetadata(key: unknown, value: unknown, target: object): void;
  getOwnMetadata(key: unknown, target: object): unknown;
  getMetadata(key: unknown, target: object): unknown;
}

const reflect = Reflect as typeof Reflect & Partial<ReflectMetadata>;
if (typeof reflect.getMetadata !== 'function') {
  const own = (key: unknown, target: object): unknown => store.get(target)?.get(key);
  Object.assign(Reflect, {
    defineMetadata(key: unknown, value: unknown, target: object): void {
      const map = store.get(target) ?? new Map<unknown, unknown>();
      map.set(key, value);
      store.set(target, map);
    },
    getOwnMetadata: own,
    getMetadata(key: unknown, target: object): unknown {
      for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t) as object | null) {
        const value = own(key, t);
        if (value !== undefined) return value;
      }
      return undefined;
    },
  } satisfies ReflectMetadata);
}
