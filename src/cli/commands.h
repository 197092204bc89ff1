/*
 * The subcommands of the `shardmart` binary. Each is a function taking the arguments after its
 * name and returning the process exit code; the table in main.c (name, summary, help, handler)
 * is data, so `shardmart help` and dispatch can never disagree.
 */
#ifndef SHARDMART_CLI_COMMANDS_H
#define SHARDMART_CLI_COMMANDS_H

struct cli_command {
    const char *name;
    const char *summary; /* one line for `shardmart help` */
    const char *usage;   /* the full text for `shardmart help <name>` and `<name> --help` */
    int (*run)(int argc, char **argv);
};

/* `shardmart start` (cmd_start.c). */
extern const char cli_start_usage[];
int cli_start(int argc, char **argv);

/* `shardmart ring` (cmd_ring.c). */
extern const char cli_ring_usage[];
int cli_ring(int argc, char **argv);

/* `shardmart bench` (cmd_bench.c, bench_loop.c, bench_workload.c). */
extern const char cli_bench_usage[];
int cli_bench(int argc, char **argv);

/* `shardmart check` (cmd_check.c). */
extern const char cli_check_usage[];
int cli_check(int argc, char **argv);

/* `shardmart wal` (cmd_wal.c). */
extern const char cli_wal_usage[];
int cli_wal(int argc, char **argv);

/* `shardmart sim` (cmd_sim.c). */
extern const char cli_sim_usage[];
int cli_sim(int argc, char **argv);

/* `shardmart demo` (cmd_demo.c). */
extern const char cli_demo_usage[];
int cli_demo(int argc, char **argv);

/* `shardmart admin` (cmd_admin.c). */
extern const char cli_admin_usage[];
int cli_admin(int argc, char **argv);

/* The table, terminated by an entry whose name is NULL. */
extern const struct cli_command cli_commands[];

#endif
