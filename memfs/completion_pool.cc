#include "memfs/completion_pool.h"

namespace zest::memfs {

CompletionPool::CompletionPool(unsigned threads, std::chrono::microseconds delay)
    : delay_(delay) {
  for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
}

void CompletionPool::enqueue(std::unique_ptr<Task> task) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      queue_.push_back({std::chrono::steady_clock::now() + delay_, std::move(task)});
      cv_.notify_one();
      return;
    }
  }
  task->run();  // shut down: answer now rather than never
}

void CompletionPool::loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    if (queue_.empty()) {
      if (stopping_) return;
      cv_.wait(lock);
      continue;
    }
    if (!stopping_ && std::chrono::steady_clock::now() < queue_.front().due) {
      cv_.wait_until(lock, queue_.front().due);
      continue;
    }
    std::unique_ptr<Task> task = std::move(queue_.front().task);
    queue_.pop_front();
    lock.unlock();
    task->run();
    task.reset();
    lock.lock();
  }
}

void CompletionPool::shutdown() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

}  // namespace zest::memfs
