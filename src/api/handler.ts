import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { HttpError, NotFoundError } from '../shared/errors';
import { logger } from '../shared/observability';
import { type HttpResponse, problemResponse } from './http';
import { makeRoutes, type RouteDeps } from './routes';

/** The API Lambda handler (HTTP API payload v2): route, then map any error in one place. */
export function makeHandler(deps: RouteDeps) {
  const { routes } = makeRoutes(deps);
  return async (event: APIGatewayProxyEventV2): Promise<HttpResponse> => {
    const method = event.requestContext?.http?.method?.toUpperCase() ?? 'GET';
    const path = event.rawPath ?? '/';
    logger.appendKeys({ requestId: event.requestContext?.requestId, path, method });
    try {
      for (const route of routes) {
        const match = route.pattern.exec(path);
        if (!match) continue;
        const routeHandler = route.methods[method];
        if (!routeHandler) {
          throw new HttpError(
            405,
            'method_not_allowed',
            `${method} is not allowed here`,
            undefined,
            {
              headers: { Allow: Object.keys(route.methods).join(', ') },
            },
          );
        }
        return await routeHandler(event, { ...(match.groups ?? {}) });
      }
      throw new NotFoundError('not_found', `no route for ${path}`);
    } catch (error: unknown) {
      return problemResponse(error);
    } finally {
      logger.removeKeys(['requestId', 'path', 'method']);
    }
  };
}
