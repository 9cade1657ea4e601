// CompletionPool: runs tasks on a few threads after a fixed delay. memfs uses
// it for the reply_delay_us test option, to prove that replies may be moved
// to another thread and completed later.
//
// Tasks run in the order posted (all have the same delay). shutdown() (also
// run by the destructor) stops the threads after running every task still
// queued at once, so no reply is left unanswered; a task posted after that
// runs inline on the caller's thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace zest::memfs {

class CompletionPool {
 public:
  CompletionPool(unsigned threads, std::chrono::microseconds delay);
  ~CompletionPool() { shutdown(); }
  CompletionPool(const CompletionPool&) = delete;
  CompletionPool& operator=(const CompletionPool&) = delete;

  // f: a move-only callable taking no arguments.
  template <class F>
  void post(F&& f) {
    enqueue(std::make_unique<TaskOf<std::decay_t<F>>>(std::forward<F>(f)));
  }
  void shutdown();

 private:
  struct Task {
    virtual ~Task() = default;
    virtual void run() = 0;
  };
  template <class F>
  struct TaskOf final : Task {
    explicit TaskOf(F&& f) : fn(std::move(f)) {}
    void run() override { fn(); }
    F fn;
  };
  struct Queued {
    std::chrono::steady_clock::time_point due;
    std::unique_ptr<Task> task;
  };

  void enqueue(std::unique_ptr<Task> task);
  void loop();

  const std::chrono::microseconds delay_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Queued> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace zest::memfs
