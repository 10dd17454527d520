/**
 * jsdom (document, cookies) plus Node's fetch, Request, Response, Headers, TextEncoder
 * and TextDecoder, which jsdom
 * lacks: the src/ tests send real requests to a real HTTP server on 127.0.0.1.
 */
const { TestEnvironment } = require('jest-environment-jsdom');

class JsdomWithFetchEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of [
      'fetch',
      'Request',
      'Response',
      'Headers',
      'TextEncoder',
      'TextDecoder'
    ]) {
      this.global[name] = globalThis[name];
    }
  }
}

module.exports = JsdomWithFetchEnvironment;
