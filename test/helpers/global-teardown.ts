export default async function globalTeardown(): Promise<void> {
  await Promise.all((globalThis.__MOTOS__ ?? []).map((moto) => moto.stop()));
}
