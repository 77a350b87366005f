import { backoffSeconds } from '../../src/worker/backoff';

describe('retry backoff', () => {
  const policy = { baseSeconds: 2, maxSeconds: 60 };

  it('doubles with each receive, with jitter between half and all of the step', () => {
    expect(backoffSeconds(policy, 1, 0, () => 0)).toBe(1);
    expect(backoffSeconds(policy, 1, 0, () => 1)).toBe(2);
    expect(backoffSeconds(policy, 3, 0, () => 0)).toBe(4);
    expect(backoffSeconds(policy, 3, 0, () => 1)).toBe(8);
  });

  it('never exceeds the maximum', () => {
    expect(backoffSeconds(policy, 30, 0, () => 1)).toBe(60);
  });

  it("waits at least as long as the server's Retry-After", () => {
    expect(backoffSeconds(policy, 1, 7_000, () => 0)).toBe(7);
  });
});
