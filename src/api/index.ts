// Placeholder entry, replaced by the API handler (issue 3); exists so the CDK app can bundle it.
export const handler = async (): Promise<{ statusCode: number; body: string }> => ({
  statusCode: 503,
  body: 'not ready',
});
