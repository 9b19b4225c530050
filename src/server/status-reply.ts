// Every refusal is a Kubernetes Status with a reason and an HTTP code; this sends one.
import type { FastifyReply } from 'fastify';
import { httpStatus } from '../protocol/status.js';

const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  408: 'Timeout',
  409: 'Conflict',
  413: 'RequestEntityTooLarge',
  415: 'UnsupportedMediaType',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
};

export function reasonFor(code: number): string {
  return REASONS[code] ?? (code >= 500 ? 'InternalError' : 'BadRequest');
}

export function sendStatus(reply: FastifyReply, code: number, message: string, reason = reasonFor(code)): FastifyReply {
  return reply.code(code).header('content-type', 'application/json').send(httpStatus(code, reason, message));
}
