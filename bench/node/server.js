'use strict';
// Node.js cluster + Express peer for bench/run.sh: the stack clusterd replaces.
//
//   PORT=8091 WORKERS=2 [MONGO_URI=mongodb://127.0.0.1:27017/bench] node server.js
//
// GET /dummy                      -> {"service":"dummy","ok":true}
// GET /readmongo/:collection?filter=JSON&limit=N
//                                 -> the same find through the official driver,
//                                    the same envelope as clusterd's readmongo
//                                    ({collection,count,limit,skip,truncated,
//                                    documents}), documents as relaxed extended JSON
//
// The primary forks WORKERS workers (default scheduling: round-robin on Linux),
// replaces a worker that dies (as PM2 would), and prints one line
// "READY <n>" on stdout when all workers are listening, and
// "LISTENING <pid>" each time a worker (first or replacement) listens.
const cluster = require('node:cluster');

const PORT = parseInt(process.env.PORT || '8091', 10);
const HOST = process.env.HOST || '127.0.0.1';
const WORKERS = parseInt(process.env.WORKERS || '2', 10);
const MONGO_URI = process.env.MONGO_URI || '';
const MAX_LIMIT = 1000;

if (cluster.isPrimary) {
  let listening = 0;
  let ready = false;
  let stopping = false;
  cluster.on('listening', (worker) => {
    process.stdout.write(`LISTENING ${worker.process.pid}\n`);
    listening++;
    if (!ready && listening >= WORKERS) {
      ready = true;
      process.stdout.write(`READY ${WORKERS}\n`);
    }
  });
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    process.stdout.write(`EXIT ${worker.process.pid} ${code} ${signal}\n`);
    cluster.fork();
  });
  const stop = () => {
    stopping = true;
    for (const id in cluster.workers) cluster.workers[id].process.kill('SIGTERM');
    setTimeout(() => process.exit(0), 2000).unref();
    cluster.disconnect(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  for (let i = 0; i < WORKERS; i++) cluster.fork();
} else {
  const express = require('express');
  const app = express();
  const BODY = { service: 'dummy', ok: true };

  app.get('/dummy', (req, res) => {
    res.json(BODY);
  });

  let db = null;
  let EJSON = null;
  if (MONGO_URI) {
    const { MongoClient, BSON } = require('mongodb');
    EJSON = BSON.EJSON;
    const client = new MongoClient(MONGO_URI, {
      serverSelectionTimeoutMS: 2000,
      connectTimeoutMS: 2000,
      socketTimeoutMS: 5000,
    });
    db = client.db(); // database named in the URI path
    client.connect().catch((err) => {
      console.error(`mongodb connect: ${err.message}`);
    });
  }

  app.get('/readmongo/:collection', async (req, res) => {
    if (!db) {
      res.status(503).json({ error: 'no MONGO_URI' });
      return;
    }
    let filter = {};
    if (req.query.filter !== undefined) {
      try {
        filter = EJSON.parse(String(req.query.filter), { relaxed: true });
      } catch (e) {
        res.status(400).json({ error: 'bad filter' });
        return;
      }
    }
    let limit = parseInt(req.query.limit || '20', 10);
    if (!(limit > 0)) limit = 20;
    if (limit > MAX_LIMIT) limit = MAX_LIMIT;
    try {
      const docs = await db
        .collection(req.params.collection)
        .find(filter, { limit, maxTimeMS: 5000 })
        .toArray();
      // The same envelope as clusterd's readmongo service.
      const body =
        `{"collection":${JSON.stringify(req.params.collection)},"count":${docs.length},` +
        `"limit":${limit},"skip":0,"truncated":false,"documents":` +
        EJSON.stringify(docs, { relaxed: true }) + '}';
      res.type('application/json').send(body);
    } catch (e) {
      res.status(502).json({ error: e.message });
    }
  });

  const server = app.listen(PORT, HOST);
  server.keepAliveTimeout = 75000;
  process.on('SIGTERM', () => {
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  });
}
