import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { mariadbAvailable, startMariadb } from './support/mariadb-server.js'
import { postgresBinDir, startPostgres } from './support/postgres-server.js'

const unicode = 'Grüße, 世界 🎉🦀'

/** In CI a missing server fails the run; elsewhere the test skips and says what to install. */
function requireServer(found: boolean, debianPackage: string, skip: (note: string) => never) {
  if (found) return
  const message = `needs ${debianPackage}: apt-get install ${debianPackage}`
  if (process.env.CI) throw new Error(message)
  skip(message)
}

describe('PostgreSQL test server', () => {
  it('runs SQL, refuses a wrong password over TCP, and leaves nothing behind', async ({ skip }) => {
    requireServer(postgresBinDir() !== undefined, 'postgresql', skip)
    const server = await startPostgres()
    try {
      expect(server.major).toBeGreaterThanOrEqual(10)
      server.sql('postgres', 'CREATE DATABASE "kluis test"')
      const stored = server.sql(
        'kluis test',
        `CREATE TABLE notes(body text);
         INSERT INTO notes VALUES ('${unicode}');
         SELECT body FROM notes;`,
      )
      expect(stored).toBe(unicode)
      expect(() => server.sql('postgres', 'SELECT no_such_column')).toThrow(/no_such_column/)

      const psql = join(postgresBinDir() ?? '', 'psql')
      const connect = (url: string) =>
        spawnSync(psql, ['-X', '-A', '-t', '-w', '-c', 'SELECT current_database()', url], {
          encoding: 'utf8',
        })
      // libpq decodes the percent-encoded password and database name.
      expect(connect(server.url('kluis test')).stdout.trim()).toBe('kluis test')
      const wrongPassword = connect(server.url().replace(encodeURIComponent(server.password), 'x'))
      expect(wrongPassword.status).not.toBe(0)
      expect(wrongPassword.stderr).toMatch(/password authentication failed/)
    } finally {
      await server.stop()
    }
    await server.stop()
    expect(existsSync(server.dir)).toBe(false)
  })
})

describe('MariaDB test server', () => {
  it('runs SQL, refuses a wrong password over TCP, and leaves nothing behind', async ({ skip }) => {
    requireServer(mariadbAvailable(), 'mariadb-server', skip)
    const server = await startMariadb()
    try {
      expect(server.version).toMatch(/MariaDB/)
      expect(server.url('shop')).toBe(
        `mysql://kluis:p%40ss%3Aw%2Frd%25%2B%20%C3%A9@127.0.0.1:${server.port}/shop`,
      )
      server.sql('', 'CREATE DATABASE shop')
      const stored = server.sql(
        'shop',
        `CREATE TABLE notes(body TEXT);
         INSERT INTO notes VALUES ('${unicode}');
         SELECT body FROM notes;`,
      )
      expect(stored).toBe(unicode)
      expect(server.sql('', 'SELECT @@character_set_server')).toBe('utf8mb4')
      expect(() => server.sql('', 'SELECT no_such_column')).toThrow(/no_such_column/)

      // A wrong password in argv is fine here: it opens nothing.
      const wrongPassword = spawnSync(
        'mariadb',
        [
          '--no-defaults',
          '--protocol=TCP',
          '--host=127.0.0.1',
          `--port=${server.port}`,
          `--user=${server.user}`,
          '--password=wrong',
          '--execute=SELECT 1',
        ],
        { encoding: 'utf8' },
      )
      expect(wrongPassword.status).not.toBe(0)
      expect(wrongPassword.stderr).toMatch(/Access denied/)
    } finally {
      await server.stop()
    }
    await server.stop()
    expect(existsSync(server.dir)).toBe(false)
  })
})
