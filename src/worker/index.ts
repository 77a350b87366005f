// Placeholder entry, replaced by the worker handler (issue 3); exists so the CDK app can bundle it.
export const handler = async (): Promise<{ batchItemFailures: never[] }> => ({
  batchItemFailures: [],
});
